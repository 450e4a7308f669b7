import type pg from 'pg';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import type { VerifyReport } from '../../src/audit/verify-report.ts';
import { AppServer } from './app-server.ts';
import type { Cleanup } from './cleanup.ts';
import { ProofClient, ordinaryAgent } from './http-client.ts';
import type { CrashablePostgres } from '../lib/crashable-postgres.ts';
import type { LogBook } from './server-log.ts';

/**
 * The app's settings for the whole proof: the defaults an operator gets (pool, batch size and
 * database timeouts included, so the crash of criterion 4 meets the timeouts that production has),
 * except a 200 ms sweep, so that expiry is seen within the run's time (criterion 5). Shortened
 * database timeouts were tried and rejected: under the 10,000-request burst on two shared cores,
 * opening a connection can take longer than 1 s.
 */
export function appEnv(databaseUrl: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'info',
    SECVENTORY_SWEEP_INTERVAL_MS: '200',
  };
}

/** What every scenario works with: the database, the running app, its log, and a way to restart it. */
export class ProofContext {
  private readonly agent = ordinaryAgent();
  private appsStarted = 1;

  constructor(
    readonly db: CrashablePostgres,
    readonly sql: pg.Pool,
    readonly logBook: LogBook,
    readonly cleanup: Cleanup,
    readonly appPort: number,
    public app: AppServer,
  ) {
    cleanup.add('close the HTTP client', () => this.agent.close());
  }

  static async start(db: CrashablePostgres, sql: pg.Pool, logBook: LogBook, cleanup: Cleanup, appPort: number): Promise<ProofContext> {
    const app = await AppServer.start('app #1', appPort, appEnv(db.url), logBook, cleanup);
    return new ProofContext(db, sql, logBook, cleanup, appPort, app);
  }

  /** A client of the running app whose requests are named `<prefix>-<n>`. */
  client(requestIdPrefix: string): ProofClient {
    return new ProofClient(this.app.url, this.agent, requestIdPrefix);
  }

  /** Stops the app (gracefully, bounded); what it answered so far stays in the log book. */
  async stopApp(): Promise<'graceful' | 'killed' | 'not running'> {
    return this.app.stop();
  }

  /** Starts a new app process on the same database and port. */
  async startApp(): Promise<AppServer> {
    this.app = await AppServer.start(`app #${++this.appsStarted}`, this.appPort, appEnv(this.db.url), this.logBook, this.cleanup);
    return this.app;
  }

  verify(): Promise<VerifyReport> {
    return verifyDatabase(this.db.url);
  }
}
