import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { expectConsistent } from '../support/consistency.ts';
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
      answers = await Promise.all(answers.map((r, i) => (r.status === 503 ? send(i < indexes.length ? i : indexes.filter((j) => j % 5 === 0)[i - indexes.length]!) : Promise.resolve(r))));
    }
    const createdIds = new Set(answers.filter((r) => r.status === 201).map((r) => r.body.id));
    expect(createdIds.size).toBe(skus.length * 5);
    expect(answers.filter((r) => r.status === 409 && r.body.code === 'insufficient_stock').length).toBeGreaterThanOrEqual(skus.length * 5);

    const { rows } = await db.sql.query(`select count(*)::int as rows, count(distinct sku)::int as products from reservations`);
    expect(rows[0]).toEqual({ rows: skus.length * 5, products: skus.length });
    const { rows: [tx] } = await db.sql.query(`
      select count(distinct tx_id)::int as transactions, count(distinct (tx_id, sku))::int as product_batches
        from inventory_events where type <> 'product_created'`);
    // Several products' batches went to the database together.
    expect(tx.transactions).toBeLessThan(tx.product_batches);
    await expectConsistent(db.sql);
  });
});
