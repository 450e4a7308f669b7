import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { BatchWrite } from '../../src/engine/types.ts';
import { GroupCommitter } from '../../src/persistence/group-commit.ts';
import { systemClock } from '../../src/engine/clock.ts';
import { Registry } from '../../src/engine/registry.ts';
import { engineSettings, startEngine } from '../support/engine.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe('group commit across products', () => {
  it('G1 G2 G4: batches of many products share transactions, each guarded by its own version, while a second instance writes the same products', async () => {
    const db: TestDatabase = await createTestDatabase();
    cleanup.push(() => db.drop());
    const a: TestApp = await startTestApp({ db });
    cleanup.push(() => a.close());
    const b: TestApp = await startTestApp({ db });
    cleanup.push(() => b.close());
    const skus = Array.from({ length: 60 }, (_, i) => `G-${i}`);
    for (const sku of skus) await a.http('POST', '/products', { body: { sku, name: sku, stock: 5 } });

    // 10 requests per product (stock 5 each), through both instances, with every fifth one
    // sent twice under one key (a retry racing its original).
    const send = (i: number) => {
      const sku = skus[i % skus.length]!;
      const via = i % 3 === 0 ? b : a;
      return via.http('POST', `/products/${sku}/reservations`, { key: `g-${i}`, body: { quantity: 1 } });
    };
    const indexes = Array.from({ length: skus.length * 10 }, (_, i) => i);
    let answers = await Promise.all([...indexes.map(send), ...indexes.filter((i) => i % 5 === 0).map(send)]);
    for (let round = 0; round < 5 && answers.some((r) => r.status === 503); round++) {
      answers = await Promise.all(
        answers.map((r, i) =>
          r.status === 503
            ? send(i < indexes.length ? i : indexes.filter((j) => j % 5 === 0)[i - indexes.length]!)
            : Promise.resolve(r),
        ),
      );
    }
    const createdIds = new Set(answers.filter((r) => r.status === 201).map((r) => r.body.id));
    expect(createdIds.size).toBe(skus.length * 5);
    expect(
      answers.filter((r) => r.status === 409 && r.body.code === 'insufficient_stock').length,
    ).toBeGreaterThanOrEqual(skus.length * 5);

    const { rows } = await db.sql.query(
      `select count(*)::int as rows, count(distinct sku)::int as products from reservations`,
    );
    expect(rows[0]).toEqual({ rows: skus.length * 5, products: skus.length });
    const {
      rows: [tx],
    } = await db.sql.query(`
      select count(distinct tx_id)::int as transactions, count(distinct (tx_id, sku))::int as product_batches
        from inventory_events where type <> 'product_created'`);
    // Several products' batches went to the database together.
    expect(tx.transactions).toBeLessThan(tx.product_batches);
    expect(await databaseViolations(db.sql)).toEqual([]);
  });
});

describe('group commit with two engines over one store', () => {
  it('G1 G4: two registries sharing one PgStore commit the same product concurrently: nothing is lost or doubled', async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const engine = startEngine(db.url, systemClock);
    cleanup.push(() => engine.stop());
    const twin = new Registry(engine.store, systemClock, engineSettings);
    await engine.registry.createProduct('TWIN-1', 'twin', 100, 'test');
    const reserve = (r: Registry, i: number) =>
      r.execute('TWIN-1', {
        type: 'reserve',
        reservationId: randomUUID(),
        quantity: 1,
        ttlSeconds: 600,
        idempotencyKey: `twin-${i}`,
        requestId: `req-${i}`,
      });
    let results = await Promise.all(Array.from({ length: 300 }, (_, i) => reserve(i % 2 ? engine.registry : twin, i)));
    // Conflicts exhausted (503) are not acknowledged: retry them under their keys.
    for (let round = 0; round < 10 && results.some((r) => r.type === 'failed'); round++) {
      results = await Promise.all(
        results.map((r, i) => (r.type === 'failed' ? reserve(i % 2 ? twin : engine.registry, i) : Promise.resolve(r))),
      );
    }
    const created = results.filter((r) => r.type === 'done' && r.outcome.kind === 'reservation');
    expect(created.length).toBe(100);
    const { rows } = await db.sql.query(
      `select reserved::int, (select count(*)::int from reservations where sku = 'TWIN-1') as rows from products where sku = 'TWIN-1'`,
    );
    expect(rows[0]).toEqual({ reserved: 100, rows: 100 });
    expect(await databaseViolations(db.sql)).toEqual([]);
  });
});

describe('group commit pipelining', () => {
  it("a product's next statement leaves as soon as the previous one returns, before that one's callers are answered", async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const pool = new pg.Pool({ connectionString: db.url, max: 4 });
    cleanup.push(() => pool.end());
    const order: string[] = [];
    const query = pool.query.bind(pool) as (config: pg.QueryConfig) => Promise<pg.QueryResult>;
    let sent = 0;
    // Records when each statement leaves; the pool itself is the real one.
    (pool as unknown as { query: typeof query }).query = (config) => {
      order.push(`sent ${++sent}`);
      return query(config);
    };
    const committer = new GroupCommitter(pool);
    // A product that does not exist: each statement answers "conflict" without writing anything.
    const write = (versionBefore: number): BatchWrite => ({
      sku: 'NO-SUCH-PRODUCT',
      versionBefore,
      hashBefore: '0'.repeat(64),
      counters: { total: 1, reserved: 0, purchased: 0, version: versionBefore + 1 },
      atMs: Date.now(),
      inserted: [],
      changed: [],
      events: [],
      idempotency: [],
    });
    const first = committer.commit(write(1)).then((r) => order.push(`answered 1: ${r.type}`));
    const second = committer.commit(write(2)).then((r) => order.push(`answered 2: ${r.type}`));
    await Promise.all([first, second]);
    expect(order).toEqual(['sent 1', 'sent 2', 'answered 1: conflict', 'answered 2: conflict']);
  });
});
