// npm run verify:million [-- --events N]
// Builds a database with at least N (default 1,000,000) audit events by driving the engine itself
// (registry -> actors -> PgStore.commitBatch, hundreds of commands per transaction), then runs
// `verifyDatabase` on it in a fresh process and prints the time it took and that process's peak
// RSS: the figure that shows verify reads the log in bounded pieces rather than whole.
// Uses its own embedded PostgreSQL (fsync off: the data is thrown away) unless DATABASE_URL names
// a server, on which it creates and drops its own database.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Command } from 'commander';
import pg from 'pg';
import { ManualClock } from '../src/engine/clock.ts';
import { Registry } from '../src/engine/registry.ts';
import type { Command as EngineCommand, CommandResult } from '../src/engine/types.ts';
import { createPool } from '../src/persistence/database.ts';
import { EmbeddedServer } from '../src/persistence/embedded-postgres.ts';
import { migrate } from '../src/persistence/migrate.ts';
import { PgStore } from '../src/persistence/pg-store.ts';
import { verifyDatabase } from '../src/audit/verify-database.ts';

const thisFile = fileURLToPath(import.meta.url);
const databaseName = 'verify_million';
const products = 200;
const poolSize = 8;
/** Reservations per product per wave: a wave of one product is one batch, one transaction. */
const reservesPerWave = 600;
const quiet = { info: () => {}, warn: console.warn, error: console.error };

interface VerifyFigures {
  ok: boolean;
  products: number;
  events: number;
  reservations: number;
  violations: number;
  durationMs: number;
  rssMaxMb: number;
}

/** The child: verify only, so its peak RSS is verify's alone. */
async function verifyOnly(url: string): Promise<void> {
  const report = await verifyDatabase(url, { onProgress: (line) => process.stderr.write(`  verify: ${line}\n`) });
  for (const v of report.violations.slice(0, 10)) process.stderr.write(`  ${v.guarantee} ${v.sku}: ${v.message}\n`);
  const figures: VerifyFigures = {
    ok: report.ok,
    products: report.products,
    events: report.events,
    reservations: report.reservations,
    violations: report.violations.length,
    durationMs: report.durationMs,
    rssMaxMb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
  process.stdout.write(JSON.stringify(figures));
}

/**
 * One wave per product: finish the previous wave's reservations (purchase, cancel, expire, and a
 * purchase of a cancelled one, rejected), reserve new ones, adjust stock, and ask for more than
 * there is (rejected). Every event type and most rejection codes appear, in realistic batches.
 */
function waveCommands(previous: readonly string[], fresh: string[], wave: number, sku: string): EngineCommand[] {
  const commands: EngineCommand[] = [];
  const requestId = `${sku}-w${wave}`;
  previous.forEach((reservationId, i) => {
    if (i % 10 < 4) commands.push({ type: 'purchase', reservationId, idempotencyKey: null, requestId });
    else if (i % 10 < 8) commands.push({ type: 'cancel', reservationId, idempotencyKey: null, requestId });
    else commands.push({ type: 'expire', reservationId });
    if (i % 50 === 5) commands.push({ type: 'purchase', reservationId, idempotencyKey: null, requestId });
  });
  for (let i = 0; i < reservesPerWave; i++) {
    const reservationId = randomUUID();
    fresh.push(reservationId);
    // Those that the next wave expires live 1 s; the clock moves 2 s per wave.
    const ttlSeconds = i % 10 >= 8 ? 1 : 600;
    commands.push({
      type: 'reserve',
      reservationId,
      quantity: 1 + (i % 3),
      ttlSeconds,
      idempotencyKey: `${sku}-w${wave}-r${i}`,
      requestId,
    });
  }
  for (let i = 0; i < 10; i++) {
    commands.push({
      type: 'adjust',
      delta: i % 2 === 0 ? 7 : -3,
      reason: 'cycle count',
      idempotencyKey: `${sku}-w${wave}-a${i}`,
      requestId,
    });
  }
  for (let i = 0; i < 5; i++) {
    commands.push({
      type: 'reserve',
      reservationId: randomUUID(),
      quantity: 1_000_000,
      ttlSeconds: 600,
      idempotencyKey: `${sku}-w${wave}-x${i}`,
      requestId,
    });
  }
  return commands;
}

async function build(url: string, eventsMin: number): Promise<void> {
  const pool = createPool(
    {
      connectionString: url,
      poolSize,
      connectionAcquireTimeoutMs: 30_000,
      statementTimeoutMs: 60_000,
      queryTimeoutMs: 70_000,
      idleInTransactionTimeoutMs: 60_000,
    },
    (error) => console.warn(`idle connection failed: ${error.message}`),
  );
  const clock = new ManualClock(Date.now());
  let events = 0;
  const registry = new Registry(
    new PgStore(pool),
    clock,
    {
      // A product's whole wave (about 1,300 commands) in one batch: fewer, bigger transactions.
      batchSizeMax: 2_048,
      mailboxLengthMax: 100_000,
      liveActorsPerShardMax: 8192,
      actorIdleMs: 3_600_000,
    },
    { batchCommitted: (b) => void (events += b.events) },
  );
  try {
    const skus = Array.from({ length: products }, (_, i) => `M-${String(i).padStart(4, '0')}`);
    for (const sku of skus) {
      const created = await registry.createProduct(sku, sku, 100_000, 'verify-million');
      if (created.type !== 'created') throw new Error(`product ${sku} exists: use an empty database`);
      events++;
    }
    let open = new Map<string, string[]>(skus.map((sku) => [sku, []]));
    const startedMs = performance.now();
    for (let wave = 1; events < eventsMin; wave++) {
      clock.advance(2_000);
      const next = new Map<string, string[]>();
      // As many products at a time as there are connections: more would only queue for the pool,
      // and on a busy machine past its acquire timeout.
      for (let i = 0; i < skus.length; i += poolSize) {
        const results: Promise<CommandResult>[] = [];
        for (const sku of skus.slice(i, i + poolSize)) {
          const fresh: string[] = [];
          next.set(sku, fresh);
          for (const command of waveCommands(open.get(sku)!, fresh, wave, sku))
            results.push(registry.execute(sku, command));
        }
        for (const result of await Promise.all(results)) {
          if (result.type === 'failed') throw new Error(`a command failed: ${result.code} ${result.reason}`);
        }
      }
      open = next;
      const seconds = (performance.now() - startedMs) / 1000;
      process.stderr.write(`  build: wave ${wave}, ${events} events, ${Math.round(events / seconds)} events/s\n`);
    }
    await registry.drained();
  } finally {
    await pool.end();
  }
}

async function main(): Promise<void> {
  const opts = new Command('verify-million')
    .option('--events <n>', 'build at least this many events', (v) => Number(v), 1_000_000)
    .option('--keep', 'keep the database (and the embedded server running) afterwards')
    .parse()
    .opts<{ events: number; keep?: boolean }>();

  let embedded: EmbeddedServer | undefined;
  let tmp: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (adminUrl === undefined || adminUrl === '') {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'secventory-verify-million-'));
    // As root, PostgreSQL runs as a created user that must reach the directory.
    await chmod(tmp, 0o755);
    embedded = new EmbeddedServer({
      dataDir: path.join(tmp, 'pg'),
      settings: { fsync: 'off', synchronous_commit: 'off' },
    });
    await embedded.start();
    adminUrl = embedded.url;
  }
  const url = new URL(adminUrl);
  url.pathname = `/${databaseName}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${databaseName} with (force)`);
    await admin.query(`create database ${databaseName}`);
    await migrate(url.toString(), quiet);

    console.log(`building at least ${opts.events} events on ${products} products through the engine...`);
    const buildStartedMs = performance.now();
    await build(url.toString(), opts.events);
    const buildSeconds = (performance.now() - buildStartedMs) / 1000;
    const size = (await admin.query(`select pg_size_pretty(pg_database_size($1)) as size`, [databaseName])).rows[0]
      .size;
    console.log(`built in ${buildSeconds.toFixed(1)} s (database ${size}); verifying in a fresh process...`);

    const child = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', thisFile, '--verify-only', url.toString()],
      {
        maxBuffer: 1024 * 1024,
      },
    );
    process.stderr.write(child.stderr);
    const figures = JSON.parse(child.stdout) as VerifyFigures;
    console.log(
      [
        `verify: ${figures.ok ? 'OK' : `FAILED (${figures.violations} violations)`}`,
        `  ${figures.events} events, ${figures.products} products, ${figures.reservations} reservations`,
        `  time      ${(figures.durationMs / 1000).toFixed(1)} s (${Math.round(figures.events / (figures.durationMs / 1000))} events/s)`,
        `  peak RSS  ${figures.rssMaxMb} MB (the verifying process, Node included)`,
      ].join('\n'),
    );
    if (!figures.ok) process.exitCode = 1;
    if (!opts.keep) await admin.query(`drop database if exists ${databaseName} with (force)`);
  } finally {
    await admin.end();
    if (!opts.keep) {
      await embedded?.stop();
      if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
    }
  }
}

if (process.argv[2] === '--verify-only') await verifyOnly(process.argv[3]!);
else await main();
