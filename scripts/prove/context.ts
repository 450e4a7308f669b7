import type pg from 'pg';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import type { VerifyReport } from '../../src/audit/verify-report.ts';
import { ApiClient, clientAgent } from '../lib/api-client.ts';
import type { CrashablePostgres } from '../lib/crashable-postgres.ts';
import { databaseViolations, type Violation } from '../lib/oracle.ts';
import { ServerProcess } from '../lib/server-process.ts';
import type { Cleanup } from './cleanup.ts';
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

/**
 * Starts `node bin/secventory.js serve` as production runs it, on the proof's port, with its output
 * captured line by line: the structured failure log is part of the evidence. Stopped by the
 * cleanup, whatever happens (ServerProcess.start kills a server that never became ready).
 */
function startApp(
  name: string,
  port: number,
  databaseUrl: string,
  logBook: LogBook,
  cleanup: Cleanup,
): Promise<ServerProcess> {
  return ServerProcess.start({
    name,
    port,
    env: appEnv(databaseUrl),
    onLine: (line) => logBook.add(name, line),
    onSpawned: (app) =>
      cleanup.add(`stop ${name} (pid ${app.pid})`, async () => {
        await app.stop();
      }),
  });
}

/** What every scenario works with: the database, the running app, its log, and a way to restart it. */
export class ProofContext {
  private readonly agent = clientAgent(256, 4_000);
  private appsStarted = 1;

  constructor(
    readonly db: CrashablePostgres,
    readonly sql: pg.Pool,
    readonly logBook: LogBook,
    readonly cleanup: Cleanup,
    readonly appPort: number,
    public app: ServerProcess,
  ) {
    cleanup.add('close the HTTP client', () => this.agent.close());
  }

  static async start(
    db: CrashablePostgres,
    sql: pg.Pool,
    logBook: LogBook,
    cleanup: Cleanup,
    appPort: number,
  ): Promise<ProofContext> {
    const app = await startApp('app #1', appPort, db.url, logBook, cleanup);
    return new ProofContext(db, sql, logBook, cleanup, appPort, app);
  }

  /** A client of the running app whose requests are named `<prefix>-<n>`. */
  client(requestIdPrefix: string): ApiClient {
    return new ApiClient(this.app.url, this.agent, requestIdPrefix);
  }

  /** Stops the app (gracefully, bounded); what it answered so far stays in the log book. */
  async stopApp(): Promise<'graceful' | 'killed' | 'not running'> {
    return this.app.stop();
  }

  /** Starts a new app process on the same database and port. */
  async startApp(): Promise<ServerProcess> {
    this.app = await startApp(`app #${++this.appsStarted}`, this.appPort, this.db.url, this.logBook, this.cleanup);
    return this.app;
  }

  verify(): Promise<VerifyReport> {
    return verifyDatabase(this.db.url);
  }

  /** The tests' oracle (plain SQL, apart from the engine) over the whole database. */
  oracle(): Promise<Violation[]> {
    return databaseViolations(this.sql);
  }
}
