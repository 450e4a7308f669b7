// npm run bench:memory -- [--products N] [--bound all|default]
// Measures what an idle actor costs and what is left after passivation: N products are written
// straight into a fresh embedded PostgreSQL (with their first events and hash chains), then each
// is read once through a Registry (one actor activation each).
//
// --bound all (the default): the live-actor bound is raised so all N actors are live at once,
//   then every one is passivated. Gives the heap per idle actor.
// --bound default: the service's own defaults (liveActorsPerShardMax, actorIdleMs from
//   src/config.ts and src/engine/limits.ts) and its passivation timer, so a full shard evicts its
//   oldest idle actor as the service would. After the last read, the timer passivates what is
//   idle; then a full GC and RSS sampled every second, since V8's memory reducer may give pages
//   back to the OS only some seconds later. Answers the goal "1,000,000 SKUs touched once leave
//   the process < 300 MB after passivation".
//
// Run with --expose-gc (the npm script does) so the heap figures are after a full collection.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import type pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { systemClock } from '../src/engine/clock.ts';
import { productCreatedEvent } from '../src/engine/decide.ts';
import { chainEvents, genesisHash } from '../src/engine/event-hash.ts';
import { passivationIntervalMs, shardCount } from '../src/engine/limits.ts';
import { Registry, type RegistrySettings } from '../src/engine/registry.ts';
import { createPool } from '../src/persistence/database.ts';
import { EmbeddedServer } from '../src/persistence/embedded-postgres.ts';
import { migrate } from '../src/persistence/migrate.ts';
import { PgStore } from '../src/persistence/pg-store.ts';

/** Products written per INSERT statement, and reads in flight at once. */
const writeChunkProducts = 10_000;
const readsInFlightMax = 500;
/** How long RSS is sampled after the final GC, one sample per second. */
const settleSamplesS = 10;
const rssSampleIntervalMs = 200;
/** The goal this measurement answers. */
const rssGoalBytesMax = 300 * 1024 * 1024;

const opts = new Command('actor-memory')
  .option('--products <n>', 'products to activate', (v) => Number(v), 100_000)
  .option(
    '--bound <mode>',
    "all: every actor live at once; default: the service's live-actor bound and idle time",
    'all',
  )
  .parse()
  .opts<{ products: number; bound: string }>();
if (opts.bound !== 'all' && opts.bound !== 'default')
  throw new Error(`--bound must be all or default, not ${opts.bound}`);
const n = opts.products;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const settle = () => {
  gc();
  return process.memoryUsage();
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const skuOf = (i: number) => `MEM-${i}`;

/** The highest RSS seen, sampled in the background while the script works. */
class RssPeak {
  maxBytes = process.memoryUsage.rss();
  private readonly timer = setInterval(() => this.sample(), rssSampleIntervalMs);
  sample(): number {
    const rss = process.memoryUsage.rss();
    if (rss > this.maxBytes) this.maxBytes = rss;
    return rss;
  }
  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}

async function writeProducts(pool: pg.Pool): Promise<void> {
  const nowMs = Date.now();
  for (let i = 0; i < n; i += writeChunkProducts) {
    // One chunk of SKUs at a time: the 1M strings never exist at once.
    const skus = Array.from({ length: Math.min(writeChunkProducts, n - i) }, (_, j) => skuOf(i + j));
    const hashes = skus.map(
      (sku) => chainEvents(genesisHash, sku, [productCreatedEvent(10, 'memory', nowMs)])[0]!.hash,
    );
    await pool.query(
      `
      with p as (
        insert into products (sku, name, initial_stock, total, version, created_at, updated_at)
        select s, s, 10, 10, 1, to_timestamp($2::double precision / 1000), to_timestamp($2::double precision / 1000) from unnest($1::text[]) s
        returning sku)
      insert into inventory_events (sku, seq, type, request_id, source, total, reserved, purchased, at, hash)
      select s.sku, 1, 'product_created', 'memory', 'api', 10, 0, 0, to_timestamp($2::double precision / 1000), s.hash
        from unnest($1::text[], $3::text[]) as s (sku, hash)`,
      [skus, nowMs, hashes],
    );
  }
}

/** Reads every product once through the registry, in order; returns the reads that found none. */
async function touchAll(registry: Registry, onChunk: () => void): Promise<number> {
  let missing = 0;
  for (let i = 0; i < n; i += readsInFlightMax) {
    const reads = Array.from({ length: Math.min(readsInFlightMax, n - i) }, (_, j) => registry.product(skuOf(i + j)));
    for (const snapshot of await Promise.all(reads)) if (snapshot === null) missing++;
    onChunk();
  }
  return missing;
}

/** --bound all: every actor live at once, then all passivated (the original measurement). */
async function measureAllLive(store: PgStore): Promise<void> {
  const registry = new Registry(store, systemClock, {
    batchSizeMax: 512,
    mailboxLengthMax: 10_000,
    liveActorsPerShardMax: Math.ceil(n / 8),
    actorIdleMs: 0,
  });
  const peak = new RssPeak();
  const before = settle();
  const startedMs = performance.now();
  await touchAll(registry, () => {});
  const live = settle();
  const touchS = (performance.now() - startedMs) / 1000;
  console.log(`activated ${registry.liveActors} actors in ${touchS.toFixed(1)} s`);
  console.log(
    `idle actor: ${((live.heapUsed - before.heapUsed) / registry.liveActors).toFixed(0)} bytes of heap each (heap ${mb(before.heapUsed)} -> ${mb(live.heapUsed)}, RSS ${mb(live.rss)})`,
  );
  const passivated = registry.passivateIdle();
  const after = settle();
  peak.stop();
  console.log(
    `passivated ${passivated}: heap ${mb(after.heapUsed)}, RSS ${mb(after.rss)} (live actors ${registry.liveActors})`,
  );
  printTable([
    ['mode', 'all live (bound raised to N/8 per shard)'],
    ['products', String(n)],
    ['touch time', `${touchS.toFixed(1)} s`],
    ['peak RSS', mb(peak.maxBytes)],
    ...memoryRows('after passivation + GC', after),
    ['live actors at end', String(registry.liveActors)],
  ]);
}

/** --bound default: the service's bound, idle time and passivation timer, as in src/app.ts. */
async function measureServiceDefaults(store: PgStore, baseline: NodeJS.MemoryUsage): Promise<void> {
  // Defaults only: an empty environment, so no SECVENTORY_* variable of this shell applies.
  const config = loadConfig({});
  const settings: RegistrySettings = {
    batchSizeMax: config.batchSizeMax,
    mailboxLengthMax: config.mailboxLengthMax,
    liveActorsPerShardMax: config.liveActorsPerShardMax,
    actorIdleMs: config.actorIdleMs,
  };
  console.log(
    `service defaults: ${settings.liveActorsPerShardMax} live actors per shard x ${shardCount} shards = ${settings.liveActorsPerShardMax * shardCount}; ` +
      `idle after ${settings.actorIdleMs} ms; passivation every ${passivationIntervalMs} ms`,
  );
  const registry = new Registry(store, systemClock, settings);
  const passivation = setInterval(() => registry.passivateIdle(), passivationIntervalMs);
  const peak = new RssPeak();
  let liveActorsMax = 0;
  const startedMs = performance.now();
  let lastReportMs = startedMs;
  const missing = await touchAll(registry, () => {
    liveActorsMax = Math.max(liveActorsMax, registry.liveActors);
    if (performance.now() - lastReportMs > 10_000) {
      lastReportMs = performance.now();
      console.log(
        `  ${((lastReportMs - startedMs) / 1000).toFixed(0)} s: live actors ${registry.liveActors}, RSS ${mb(process.memoryUsage.rss())}`,
      );
    }
  });
  const touchS = (performance.now() - startedMs) / 1000;
  if (missing > 0) throw new Error(`${missing} reads found no product`);
  const touched = process.memoryUsage();
  const liveAfterTouch = registry.liveActors;
  console.log(
    `touched ${n} products in ${touchS.toFixed(1)} s; live actors ${liveAfterTouch}, RSS ${mb(touched.rss)}, heap ${mb(touched.heapUsed)}`,
  );

  // The service's timer passivates actors idle for actorIdleMs; wait for it, as the service would.
  const idleWaitMsMax = settings.actorIdleMs + 2 * passivationIntervalMs;
  const waitStartedMs = performance.now();
  while (registry.liveActors > 0 && performance.now() - waitStartedMs < idleWaitMsMax) await sleep(1000);
  const waitedS = (performance.now() - waitStartedMs) / 1000;
  clearInterval(passivation);
  const passivatedAtEnd = registry.passivateIdle();
  console.log(
    `the timer passivated the idle actors in ${waitedS.toFixed(0)} s (live actors ${registry.liveActors}, ${passivatedAtEnd} more passivated by hand)`,
  );

  const samples = await sampleAfterGc();
  peak.stop();
  const end = samples.at(-1)!;
  console.log(`RSS each second after GC: ${samples.map((s) => (s.rss / 1024 / 1024).toFixed(0)).join(' ')} MB`);
  printTable([
    ['mode', 'service defaults'],
    ['products', String(n)],
    ['touch time', `${touchS.toFixed(1)} s (${(n / touchS).toFixed(0)} reads/s)`],
    ['live actors max / after touch / at end', `${liveActorsMax} / ${liveAfterTouch} / ${registry.liveActors}`],
    ['RSS before touching (products written)', mb(baseline.rss)],
    ['peak RSS', mb(peak.maxBytes)],
    ['RSS after touch', mb(touched.rss)],
    ['RSS min after GC', mb(Math.min(...samples.map((s) => s.rss)))],
    ...memoryRows('end', end),
    ['goal: RSS < 300 MB', end.rss < rssGoalBytesMax ? 'met' : `missed by ${mb(end.rss - rssGoalBytesMax)}`],
  ]);
}

/** A full GC, then process memory once a second for settleSamplesS seconds. */
async function sampleAfterGc(): Promise<NodeJS.MemoryUsage[]> {
  gc();
  const samples: NodeJS.MemoryUsage[] = [];
  for (let s = 0; s < settleSamplesS; s++) {
    await sleep(1000);
    samples.push(process.memoryUsage());
  }
  // A last full collection: what is left is what the process keeps.
  samples.push(settle());
  return samples;
}

function memoryRows(when: string, m: NodeJS.MemoryUsage): [string, string][] {
  return [
    [`RSS ${when}`, mb(m.rss)],
    [`  heap used / heap committed ${when}`, `${mb(m.heapUsed)} / ${mb(m.heapTotal)}`],
    [`  external (of it array buffers) ${when}`, `${mb(m.external)} (${mb(m.arrayBuffers)})`],
    [`  RSS outside the V8 heap and external ${when}`, mb(m.rss - m.heapTotal - m.external)],
  ];
}

function printTable(rows: [string, string][]): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('');
  for (const [k, v] of rows) console.log(`| ${k.padEnd(width)} | ${v}`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'secventory-memory-'));
  await chmod(dir, 0o755);
  const server = new EmbeddedServer({ dataDir: path.join(dir, 'pg') });
  try {
    await server.start();
    await server.ensureDatabase('memory');
    const url = server.socketUrlFor('memory');
    await migrate(url, { info() {}, warn() {}, error: console.error });
    const pool = createPool(
      {
        connectionString: url,
        poolSize: 16,
        connectionAcquireTimeoutMs: 10_000,
        statementTimeoutMs: 60_000,
        queryTimeoutMs: 70_000,
        idleInTransactionTimeoutMs: 60_000,
      },
      () => {},
    );
    const start = settle();
    console.log(`RSS at start ${mb(start.rss)}; writing ${n} products...`);
    const writeStartedMs = performance.now();
    await writeProducts(pool);
    const baseline = settle();
    console.log(
      `wrote ${n} products in ${((performance.now() - writeStartedMs) / 1000).toFixed(1)} s; RSS ${mb(baseline.rss)}, heap ${mb(baseline.heapUsed)}`,
    );
    const store = new PgStore(pool);
    if (opts.bound === 'all') await measureAllLive(store);
    else await measureServiceDefaults(store, baseline);
    await pool.end();
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
