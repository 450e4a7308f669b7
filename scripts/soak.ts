// npm run bench:soak -- [--reservations N] [--minutes-max M] [--connections C] [--slice-seconds S]
// The hot load, slice after slice, until N reservations are stored (5 million by default): does
// the service keep its pace as the tables grow? Reports reservations per second for every slice,
// the last slice against the first, and what the sweeper's and the idempotency clean-up's
// statements cost at that size. Starts its own embedded PostgreSQL (fsync on) unless DATABASE_URL
// names one; writes reports/soak-<timestamp>.md.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import pg from 'pg';
import { EmbeddedServer } from '../src/persistence/embedded-postgres.ts';
import { deleteIdempotencyRecordsBefore } from '../src/persistence/sql/idempotency.ts';
import { selectDueReservations } from '../src/persistence/sql/reservations.ts';
import { chooseGenerator } from './bench/generator.ts';
import { createProducts, productsFor, runScenario } from './bench/scenarios.ts';
import { wrkThreadsDefault } from './bench/wrk-load.ts';
import { startServerProcess } from './lib/server-process.ts';

const opts = new Command('soak')
  .option('--reservations <n>', 'stop once this many reservations are stored', (v) => Number(v), 5_000_000)
  .option('--minutes-max <m>', 'stop after this long even if fewer are stored', (v) => Number(v), 40)
  .option('--connections <n>', 'concurrent connections', (v) => Number(v), 1000)
  .option('--slice-seconds <s>', 'seconds per reported slice', (v) => Number(v), 60)
  .parse()
  .opts<{ reservations: number; minutesMax: number; connections: number; sliceSeconds: number }>();

interface Slice {
  readonly index: number;
  readonly perSecond: number;
  readonly storedAfter: number;
  readonly p99Ms: number;
}

async function main(): Promise<void> {
  const generator = chooseGenerator(undefined);
  let embedded: EmbeddedServer | undefined;
  let tmp: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (adminUrl === undefined || adminUrl === '') {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'secventory-soak-'));
    await chmod(tmp, 0o755);
    embedded = new EmbeddedServer({ dataDir: path.join(tmp, 'pg'), settings: { max_connections: '200' } });
    await embedded.start();
    adminUrl = embedded.socketUrlFor('postgres');
  }
  try {
    const databaseUrl = await freshDatabase(adminUrl, 'bench_soak');
    const slices = await runSlices(databaseUrl, generator);
    const costs = await sizeCosts(databaseUrl);
    await report(slices, costs);
  } finally {
    await embedded?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

async function freshDatabase(adminUrl: string, database: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${database}`);
  await admin.query(`create database ${database}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function runSlices(databaseUrl: string, generator: ReturnType<typeof chooseGenerator>): Promise<Slice[]> {
  const server = await startServerProcess(databaseUrl, { SECVENTORY_MAILBOX_LENGTH_MAX: '100000' });
  const slices: Slice[] = [];
  try {
    await createProducts(server.url, productsFor('hot'));
    const deadlineMs = Date.now() + opts.minutesMax * 60_000;
    let stored = 0;
    while (stored < opts.reservations && Date.now() < deadlineMs) {
      const load = await runScenario('hot', server.url, {
        generator,
        wrkThreads: wrkThreadsDefault,
        connections: opts.connections,
        durationS: opts.sliceSeconds,
      });
      stored = await storedReservations(databaseUrl);
      const slice = {
        index: slices.length + 1,
        perSecond: load.succeededPerSecond,
        storedAfter: stored,
        p99Ms: load.latencyMsP99,
      };
      slices.push(slice);
      process.stderr.write(`slice ${slice.index}: ${slice.perSecond.toFixed(0)}/s, ${stored} stored\n`);
    }
  } finally {
    await server.stop();
  }
  return slices;
}

/** Reservations in the database (the answers of a slice's last requests may arrive after it ends). */
async function storedReservations(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>('select count(*) as n from reservations');
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

/** What the sweeper's and the clean-up's statements cost once the tables are this large (ms). */
async function sizeCosts(databaseUrl: string) {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const timed = async (f: () => Promise<unknown>) => {
      const startedMs = performance.now();
      await f();
      return performance.now() - startedMs;
    };
    // Everything is still active and ten minutes from expiry: ask as the sweeper will, ten minutes on.
    const sweepMs = await timed(() =>
      client.query(selectDueReservations, [new Date(Date.now() + 11 * 60_000).toISOString(), 1000]),
    );
    // A clean-up round that finds the oldest 10,000 records due, rolled back so the store stays whole.
    await client.query('begin');
    const cleanupMs = await timed(() =>
      client.query(deleteIdempotencyRecordsBefore, [new Date(Date.now() + 1000).toISOString(), 10_000]),
    );
    await client.query('rollback');
    const { rows } = await client.query<{ reservations: string; size: string }>(
      `select (select count(*) from reservations) as reservations, pg_size_pretty(pg_database_size(current_database())) as size`,
    );
    return { sweepMs, cleanupMs, reservations: Number(rows[0]!.reservations), size: rows[0]!.size };
  } finally {
    await client.end();
  }
}

async function report(slices: Slice[], costs: Awaited<ReturnType<typeof sizeCosts>>): Promise<void> {
  const first = slices[0];
  const last = slices.at(-1);
  const md = [
    `Soak: the hot load in ${opts.sliceSeconds}-s slices, ${opts.connections} connections, ${new Date().toISOString()}`,
    '',
    '| slice | reservations/s | p99 ms | stored after |',
    '|---|---|---|---|',
    ...slices.map((s) => `| ${s.index} | ${s.perSecond.toFixed(0)} | ${s.p99Ms.toFixed(0)} | ${s.storedAfter} |`),
    '',
    first && last
      ? `last slice / first slice = ${((last.perSecond / first.perSecond) * 100).toFixed(0)}%`
      : 'no slice ran',
    `at ${costs.reservations} reservations (database ${costs.size}): the sweeper's query for 1,000 due ` +
      `reservations took ${costs.sweepMs.toFixed(0)} ms; a clean-up of 10,000 idempotency records ${costs.cleanupMs.toFixed(0)} ms`,
  ].join('\n');
  console.log(`\n${md}\n`);
  await mkdir('reports', { recursive: true });
  await writeFile(`reports/soak-${new Date().toISOString().replace(/[:.]/g, '-')}.md`, `${md}\n`);
}

await main();
