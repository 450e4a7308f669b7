// npm run prove
// Runs the seed's six acceptance criteria, carts (criterion 7) and, where pg_autoctl is installed,
// a failover on pg_auto_failover (criterion 8), as named scenarios against a real server process
// (`node bin/secventory.js serve`) on its own embedded PostgreSQL (fsync on, a fresh directory under
// the OS's temp dir), loopback only, and writes reports/proof.md and reports/proof.json. Exits 1
// when any criterion fails. Everything it starts is stopped by pid, and its directory removed, also
// when it fails or is interrupted.
import os from 'node:os';
import { freePort } from '../src/persistence/embedded-postgres.ts';
import { checkPool } from './lib/check-pool.ts';
import { CrashablePostgres } from './lib/crashable-postgres.ts';
import { Cleanup } from './prove/cleanup.ts';
import { ProofContext } from './prove/context.ts';
import { Criterion, type CriterionResult } from './prove/criterion.ts';
import { flashSale } from './prove/criterion-1-flash-sale.ts';
import { duplicateReservations } from './prove/criterion-2-duplicate-reservations.ts';
import { duplicatePurchases } from './prove/criterion-3-duplicate-purchases.ts';
import { databaseKilled } from './prove/criterion-4-database-killed.ts';
import { expiry } from './prove/criterion-5-expiry.ts';
import { auditability } from './prove/criterion-6-audit.ts';
import { carts } from './prove/criterion-7-carts.ts';
import { failover } from './prove/criterion-8-failover.ts';
import { pgAutoctlPath } from './lib/formation.ts';
import { postgresVersion } from './prove/database-facts.ts';
import { writeReports, type RunInfo } from './prove/report.ts';
import { excerptOf, LogBook } from './prove/server-log.ts';

/** pg_autoctl, when installed: criterion 8 (failover) runs only where it can. */
const pgAutoctl = pgAutoctlPath();
/**
 * The whole run must end well within 3 minutes (4 with the failover criterion, which starts a
 * formation of three servers); past this the proof fails rather than hang.
 */
const runMsMax = pgAutoctl === null ? 170_000 : 260_000;
/** The database the app under proof uses, on the proof's own PostgreSQL. */
const databaseName = 'secventory';

const titles = [
  '10,000 concurrent reservations on stock 1,000: no oversell',
  'One reservation request sent 200 times at once: one reservation',
  'One purchase (and one cancel) sent 200 times at once: applied once',
  'PostgreSQL killed mid-purchase: 503s, recovery, retries exactly once',
  'Expired reservations restore stock, also after downtime',
  'Failures are auditable: log + audit trail account for every request',
  '2,000 concurrent carts over 20 products: all or nothing, no oversell',
  'The primary node killed (pg_auto_failover): the secondary takes over, no acknowledged write lost',
] as const;
/** The criteria this run proves: all but the failover when pg_autoctl is not installed. */
const criteria = pgAutoctl === null ? titles.slice(0, 7) : titles;

async function runCriterion<T>(
  ctx: ProofContext,
  number: number,
  scenario: (ctx: ProofContext, c: Criterion) => Promise<T>,
  database: 'shared' | 'its own' = 'shared',
): Promise<{ result: CriterionResult; evidence: T | undefined }> {
  const c = new Criterion(number, titles[number - 1]!);
  process.stderr.write(`criterion ${number}: ${c.title} ...\n`);
  let evidence: T | undefined;
  try {
    evidence = await scenario(ctx, c);
  } catch (error) {
    c.error = error instanceof Error ? error.message : String(error);
    // A scenario that broke because the app died says why, in the app's own words.
    if (!ctx.app.running)
      c.excerpt(
        `Last lines of ${ctx.app.name}, which is not running`,
        ctx.logBook
          .all()
          .filter((l) => l.server === ctx.app.name)
          .slice(-10)
          .map(excerptOf),
      );
  }
  // A criterion on a database of its own verifies it itself, before it stops that database.
  if (database === 'shared') await verifyShared(ctx, c);
  const result = c.result();
  process.stderr.write(
    `criterion ${number}: ${result.pass ? 'PASS' : 'FAIL'}${result.error === null ? '' : ` (${result.error})`}\n`,
  );
  return { result, evidence };
}

/** secventory verify and the oracle on the proof's shared database, after a criterion. */
async function verifyShared(ctx: ProofContext, c: Criterion): Promise<void> {
  try {
    c.verified(await ctx.verify());
  } catch (error) {
    c.that(
      'secventory verify on the whole database (G1-G4, G7)',
      'ok, 0 violations',
      `could not run: ${String(error)}`,
      false,
    );
  }
  try {
    c.checkedByOracle(await ctx.oracle());
  } catch (error) {
    c.oracleFailed(error);
  }
}

type Setting = Omit<RunInfo, 'wallMs' | 'cleanupFailures'>;

/** Runs the criteria in order, appending each result as it is known, so an overrun still reports what finished. */
async function prove(cleanup: Cleanup, results: CriterionResult[], setting: (info: Setting) => void): Promise<void> {
  const logBook = new LogBook();
  const db = await CrashablePostgres.start('secventory-prove-', databaseName);
  cleanup.add(`stop PostgreSQL on port ${db.port} and remove ${db.dir}`, () => db.destroy());
  const sql = checkPool(db.url);
  cleanup.add('close the SQL pool', () => sql.end());
  const ctx = await ProofContext.start(db, sql, logBook, cleanup, await freePort());
  setting({
    startedAt: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    postgres: await postgresVersion(sql),
    app: `node bin/secventory.js serve (pid ${ctx.app.pid}) on ${ctx.app.url}`,
  });
  const run = async <T>(
    number: number,
    scenario: (ctx: ProofContext, c: Criterion) => Promise<T>,
    database: 'shared' | 'its own' = 'shared',
  ) => {
    if (cleanup.started) throw new Error(`stopped before criterion ${number}: interrupted or out of time`);
    const { result, evidence } = await runCriterion(ctx, number, scenario, database);
    results.push(result);
    return evidence;
  };
  // In this order: criterion 5 restarts the app, so it comes after the crash of criterion 4 (which
  // must be survived by one app process), criterion 6 audits what 1 to 5 left behind, and criterion 7
  // (carts, on products of its own) starts the app that criterion 6 stopped.
  const flash = await run(1, flashSale);
  await run(2, duplicateReservations);
  const purchases = await run(3, duplicatePurchases);
  const killed = await run(4, databaseKilled);
  const expired = await run(5, expiry);
  await run(6, (context, c) => auditability(context, c, { flash, purchases, killed, expiry: expired }));
  await run(7, carts);
  // Its own formation of three servers and its own app, after everything else.
  if (pgAutoctl !== null) await run(8, (context, c) => failover(context, c, pgAutoctl), 'its own');
}

async function main(): Promise<number> {
  const startedMs = performance.now();
  const cleanup = new Cleanup();
  // Interrupted (Ctrl-C, a CI timeout): undo what was started, then exit as interrupted.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: stopping what the proof started\n`);
      void cleanup.runAll().finally(() => process.exit(130));
    });
  }
  let timer: NodeJS.Timeout | undefined;
  const overtime = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the proof did not finish within ${runMsMax / 1000} s`)), runMsMax);
  });
  const results: CriterionResult[] = [];
  let setting: Setting = {
    startedAt: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    postgres: 'n/a',
    app: 'n/a',
  };
  let fatal: string | null = null;
  try {
    await Promise.race([prove(cleanup, results, (s) => (setting = s)), overtime]);
  } catch (error) {
    fatal = error instanceof Error ? (error.stack ?? error.message) : String(error);
  } finally {
    clearTimeout(timer);
  }
  const cleanupFailures = await cleanup.runAll();
  // Taken after the cleanup: a scenario still running past an overrun may not add to it any more.
  const finished = [...results];
  const info: RunInfo = { ...setting, wallMs: performance.now() - startedMs, cleanupFailures };
  const summary = await writeReports(finished, criteria.length, info, fatal);
  process.stdout.write(`${summary}\n`);
  const allPass =
    fatal === null &&
    finished.length === criteria.length &&
    finished.every((r) => r.pass) &&
    cleanupFailures.length === 0;
  return allPass ? 0 : 1;
}

// Exit explicitly: an HTTP agent or a pool of a scenario that failed half-way must not keep the proof alive.
process.exit(await main());
