import type pg from 'pg';
import type { Agent } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { durability, exactlyOnce } from '../../scripts/lib/acknowledged.ts';
import { ApiClient, clientAgent } from '../../scripts/lib/api-client.ts';
import { checkPool } from '../../scripts/lib/check-pool.ts';
import { CrashablePostgres } from '../../scripts/lib/crashable-postgres.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { OperationLog, type Attempted } from '../../scripts/lib/request-accounting.ts';
import { ServerProcess } from '../../scripts/lib/server-process.ts';
import { freePort } from '../../src/persistence/embedded-postgres.ts';

// What every chaos test stands on: a PostgreSQL of its own (fsync on, so a crash is a real crash),
// the app as a child process run as production runs it (scripts/lib/server-process.ts), a client
// that records every answer (scripts/lib/request-accounting.ts), and the checks every chaos test
// ends with. Everything is loopback and bounded in time, and stopped by pid, also after a failure.

/** CHAOS_ROUNDS repeats each chaos scenario's kill/recover cycle (1 by default). */
export const chaosRounds = Math.max(1, Number(process.env.CHAOS_ROUNDS ?? 1));

/** Operations without a final answer after a failure are retried with their keys for this long. */
export const retryWithinMs = 30_000;

/** Prints a measured figure, so a run's output doubles as its report. */
export function report(scenario: string, figures: Record<string, number | string>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v) : v}`);
  console.log(`[chaos] ${scenario}: ${parts.join(' ')}`);
}

export interface AppEnv {
  readonly DATABASE_URL: string;
  readonly [name: string]: string;
}

/** The environment of an app that must turn a database outage into 503s quickly. */
export function shortTimeouts(databaseUrl: string): AppEnv {
  return {
    DATABASE_URL: databaseUrl,
    SECVENTORY_CONNECTION_TIMEOUT_MS: '1000',
    SECVENTORY_STATEMENT_TIMEOUT_MS: '1500',
    SECVENTORY_QUERY_TIMEOUT_MS: '1500',
  };
}

/** The database, the app on a fixed port (a restarted app answers on the same URL), the client and its record. */
export class ChaosRig {
  private constructor(
    readonly db: CrashablePostgres,
    readonly env: AppEnv,
    readonly port: number,
    public app: ServerProcess,
    private readonly agent: Agent,
    readonly log: OperationLog,
    /** A small pool for the test's own SQL, tolerant of the database going away under it. */
    readonly sql: pg.Pool,
  ) {}

  /** Starts PostgreSQL and the app, and creates `skus` with ample stock through the API. */
  static async start(envOf: (databaseUrl: string) => AppEnv, skus: readonly string[]): Promise<ChaosRig> {
    const db = await CrashablePostgres.start('secventory-chaos-', 'secventory');
    try {
      const env = envOf(db.url);
      const port = await freePort();
      const app = await ChaosRig.appOn(env, port);
      const agent = clientAgent(128);
      const sql = checkPool(db.url);
      const log = new OperationLog(new ApiClient(app.url, agent, 'chaos'));
      const rig = new ChaosRig(db, env, port, app, agent, log, sql);
      for (const sku of skus) await rig.log.acknowledged({ kind: 'create', sku, stock: 1_000_000 });
      return rig;
    } catch (error) {
      await db.destroy();
      throw error;
    }
  }

  private static appOn(env: AppEnv, port: number): Promise<ServerProcess> {
    return ServerProcess.start({
      port,
      env: {
        // A fast sweeper, so that expiry is seen within a test.
        SECVENTORY_SWEEP_INTERVAL_MS: '200',
        // CHAOS_DEBUG_HOOK: a module preloaded into the app (node --import), e.g. to trace what
        // made it die; its stderr lines reach recentOutput().
        ...(process.env.CHAOS_DEBUG_HOOK ? { NODE_OPTIONS: `--import ${process.env.CHAOS_DEBUG_HOOK}` } : {}),
        ...env,
      },
    });
  }

  /** Starts a new app process on the same database and port, as a supervisor would. */
  async restartApp(): Promise<ServerProcess> {
    this.app = await ChaosRig.appOn(this.env, this.port);
    return this.app;
  }

  /** Stops everything it started, whatever state it is in (a frozen PostgreSQL is thawed first). */
  async stop(): Promise<void> {
    await this.app.kill();
    await this.agent.close();
    await this.sql.end();
    await this.db.destroy();
  }
}

/**
 * The file's rig: started before its tests (PostgreSQL, the app, `skus` created), stopped after
 * them, also when they fail. Returns a getter, as the rig exists only once beforeAll has run.
 */
export function chaosRigFor(envOf: (databaseUrl: string) => AppEnv, skus: readonly string[]): () => ChaosRig {
  let rig: ChaosRig | undefined;
  beforeAll(async () => {
    rig = await ChaosRig.start(envOf, skus);
  }, 90_000);
  afterAll(async () => {
    await rig?.stop();
  }, 30_000);
  return () => {
    if (rig === undefined) throw new Error('the chaos rig did not start (see beforeAll)');
    return rig;
  };
}

/**
 * The guarantees every chaos scenario ends with, as one test each, named for the failure the
 * scenario caused: acknowledged answers are durable (at least `acknowledgedAtLeast` of them), keyed
 * retries took effect once, and the database is consistent by the oracle and by verify.
 */
export function itKeepsTheGuarantees(
  rig: () => ChaosRig,
  skus: readonly string[],
  failure: string,
  acknowledgedAtLeast = 1,
): void {
  it(`G5: every acknowledged reservation, purchase and cancel survives ${failure}`, async () => {
    await expectAcknowledgedDurable(rig().sql, rig().log.attempted, acknowledgedAtLeast);
  });

  it(`G2: requests retried with their keys after ${failure} take effect exactly once`, async () => {
    await expectExactlyOnce(rig().sql, rig().log.attempted, skus);
  });

  it('G1 G3 G4 G7: the SQL oracle and secventory verify find nothing wrong in the database', async () => {
    await expectDatabaseConsistent(rig().db.url, rig().sql);
  });
}

/**
 * G5: every final answer the client saw is in the database with that outcome (see durability in
 * scripts/lib/acknowledged.ts). Fails on fewer than `atLeast` final answers: a load that was never
 * answered would prove nothing.
 */
export async function expectAcknowledgedDurable(
  sql: pg.Pool,
  attempted: readonly Attempted[],
  atLeast = 1,
): Promise<void> {
  const { checked, missing } = await durability(sql, attempted);
  expect(missing).toEqual([]);
  expect(checked, 'final answers compared with the database').toBeGreaterThanOrEqual(atLeast);
}

/** G2 after retries: one outcome per operation, its key took effect once, no reservation nobody was answered. */
export async function expectExactlyOnce(
  sql: pg.Pool,
  attempted: readonly Attempted[],
  skus: readonly string[],
): Promise<void> {
  const { operations, ...findings } = await exactlyOnce(sql, attempted, skus);
  expect(findings).toEqual({ unanswered: [], disagreeing: [], notOnce: [], unexplainedReservations: [] });
  expect(operations, 'keyed operations checked').toBeGreaterThan(0);
}

/** G1-G4, G7: the tests' oracle and `secventory verify` find nothing. */
export async function expectDatabaseConsistent(databaseUrl: string, sql: pg.Pool): Promise<void> {
  expect(await databaseViolations(sql)).toEqual([]);
  const verified = await verifyDatabase(databaseUrl);
  expect(verified.violations).toEqual([]);
  expect(verified.ok).toBe(true);
}
