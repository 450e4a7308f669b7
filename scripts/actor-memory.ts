// npm run bench:memory -- [--products N]
// Measures what an idle actor costs and what is left after passivation: N products are written
// straight into a fresh embedded PostgreSQL (with their first events and hash chains), an engine
// activates an actor for each (one read through the actor), then every actor is passivated.
// Run with --expose-gc (the npm script does) so the heap figures are after a full collection.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { systemClock } from '../src/engine/clock.ts';
import { productCreatedEvent } from '../src/engine/decide.ts';
import { chainEvents, genesisHash } from '../src/engine/event-hash.ts';
import { Registry } from '../src/engine/registry.ts';
import { createPool } from '../src/persistence/database.ts';
import { EmbeddedServer } from '../src/persistence/embedded-postgres.ts';
import { migrate } from '../src/persistence/migrate.ts';
import { PgStore } from '../src/persistence/pg-store.ts';

const opts = new Command('actor-memory').option('--products <n>', 'products to activate', (v) => Number(v), 100_000).parse().opts<{ products: number }>();
const n = opts.products;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const settle = () => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage();
};

const dir = await mkdtemp(path.join(os.tmpdir(), 'secventory-memory-'));
await chmod(dir, 0o755);
const server = new EmbeddedServer({ dataDir: path.join(dir, 'pg') });
try {
  await server.start();
  await server.ensureDatabase('memory');
  const url = server.socketUrlFor('memory');
  await migrate(url, { info() {}, warn() {}, error: console.error });
  const pool = createPool({ connectionString: url, poolSize: 16, connectionAcquireTimeoutMs: 10_000, statementTimeoutMs: 60_000, queryTimeoutMs: 70_000, idleInTransactionTimeoutMs: 60_000 }, () => {});

  console.log(`writing ${n} products...`);
  const nowMs = Date.now();
  for (let i = 0; i < n; i += 10_000) {
    const skus = Array.from({ length: Math.min(10_000, n - i) }, (_, j) => `MEM-${i + j}`);
    const hashes = skus.map((sku) => chainEvents(genesisHash, sku, [productCreatedEvent(10, 'memory', nowMs)])[0]!.hash);
    await pool.query(`
      with p as (
        insert into products (sku, name, initial_stock, total, version, created_at, updated_at)
        select s, s, 10, 10, 1, to_timestamp($2::double precision / 1000), to_timestamp($2::double precision / 1000) from unnest($1::text[]) s
        returning sku)
      insert into inventory_events (sku, seq, type, request_id, source, total, reserved, purchased, at, hash)
      select s.sku, 1, 'product_created', 'memory', 'api', 10, 0, 0, to_timestamp($2::double precision / 1000), s.hash
        from unnest($1::text[], $3::text[]) as s (sku, hash)`, [skus, nowMs, hashes]);
  }

  const registry = new Registry(new PgStore(pool), systemClock, {
    batchSizeMax: 512, mailboxLengthMax: 10_000, liveActorsPerShardMax: Math.ceil(n / 8), actorIdleMs: 0,
  });
  const before = settle();
  const startedMs = performance.now();
  for (let i = 0; i < n; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, n - i) }, (_, j) => registry.product(`MEM-${i + j}`)));
  }
  const live = settle();
  console.log(`activated ${registry.liveActors} actors in ${((performance.now() - startedMs) / 1000).toFixed(1)} s`);
  console.log(`idle actor: ${((live.heapUsed - before.heapUsed) / registry.liveActors).toFixed(0)} bytes of heap each (heap ${mb(before.heapUsed)} -> ${mb(live.heapUsed)}, RSS ${mb(live.rss)})`);
  const passivated = registry.passivateIdle();
  const after = settle();
  console.log(`passivated ${passivated}: heap ${mb(after.heapUsed)}, RSS ${mb(after.rss)} (live actors ${registry.liveActors})`);
  await pool.end();
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
