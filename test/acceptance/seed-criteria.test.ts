import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';

// The seed's acceptance criteria 1, 2 and 3, each against the real service over real sockets.

let t: TestApp;
const batchSizes: number[] = [];

beforeAll(async () => {
  t = await startTestApp({ observers: [{ batchCommitted: (e) => batchSizes.push(e.commands) }] });
});
afterAll(async () => {
  await t?.close();
});

async function createProduct(sku: string, stock: number) {
  expect((await t.http('POST', '/products', { body: { sku, name: sku, stock } })).status).toBe(201);
}

describe('seed criteria', () => {
  it('G1 (criterion 1): 10,000 concurrent reservations for stock 1,000 -> exactly 1,000 succeed, 9,000 get insufficient_stock', async () => {
    await createProduct('HOT-1', 1000);
    batchSizes.length = 0;
    const startedMs = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 10_000 }, (_, i) =>
        t.http('POST', '/products/HOT-1/reservations', { key: `storm-${i}`, body: { quantity: 1 } }),
      ),
    );
    const wallMs = performance.now() - startedMs;
    const created = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status === 409 && a.body.code === 'insufficient_stock');
    expect(created.length).toBe(1000);
    expect(refused.length).toBe(9000);
    expect(new Set(created.map((a) => a.body.id)).size).toBe(1000);

    const inventory = (await t.http('GET', '/products/HOT-1/inventory')).body;
    expect(inventory).toMatchObject({
      total: 1000,
      reserved: 1000,
      purchased: 0,
      available: 0,
      activeReservations: 1000,
    });
    const { rows } = await t.db.sql.query(
      `select reserved, (select sum(quantity) from reservations where sku = 'HOT-1' and status = 'active')::int as active_sum,
              (select count(*) from inventory_events where sku = 'HOT-1' and type = 'rejected' and code = 'insufficient_stock')::int as rejected_events
         from products where sku = 'HOT-1'`,
    );
    expect(rows[0]).toEqual({ reserved: '1000', active_sum: 1000, rejected_events: 9000 });
    expect(await databaseViolations(t.db.sql)).toEqual([]);

    const meanBatch = batchSizes.reduce((a, b) => a + b, 0) / batchSizes.length;
    console.info(
      `criterion 1: 10,000 requests in ${wallMs.toFixed(0)} ms (${(10_000 / (wallMs / 1000)).toFixed(0)} req/s), ${batchSizes.length} batches, mean batch size ${meanBatch.toFixed(1)}`,
    );
  });

  it('G2 (criterion 2): one reservation request with one key sent 200 times at once -> one reservation, every answer the same 201', async () => {
    await createProduct('DUP-1', 50);
    const answers = await Promise.all(
      Array.from({ length: 200 }, () =>
        t.http('POST', '/products/DUP-1/reservations', { key: 'one-key', body: { quantity: 3 } }),
      ),
    );
    expect(answers.every((a) => a.status === 201)).toBe(true);
    expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1);
    expect(answers.filter((a) => a.headers['idempotent-replayed'] === 'true').length).toBe(199);
    expect((await t.http('GET', '/products/DUP-1/inventory')).body).toMatchObject({
      reserved: 3,
      available: 47,
      activeReservations: 1,
    });
    const { rows } = await t.db.sql.query(`select count(*)::int as n from reservations where sku = 'DUP-1'`);
    expect(rows[0].n).toBe(1);
  });

  it('G2 (criterion 3): purchase of one reservation sent 200 times at once -> purchased once', async () => {
    await createProduct('DUP-2', 10);
    const r = (await t.http('POST', '/products/DUP-2/reservations', { key: 'r', body: { quantity: 4 } })).body;
    const answers = await Promise.all(
      Array.from({ length: 200 }, () => t.http('POST', `/reservations/${r.id}/purchase`)),
    );
    expect(answers.every((a) => a.status === 200 && a.body.status === 'purchased')).toBe(true);
    expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1);
    expect((await t.http('GET', '/products/DUP-2/inventory')).body).toMatchObject({
      reserved: 0,
      purchased: 4,
      available: 6,
    });
    const { rows } = await t.db.sql.query(
      `select count(*)::int as n from inventory_events where sku = 'DUP-2' and type = 'purchased'`,
    );
    expect(rows[0].n).toBe(1);
  });

  it('G2 (criterion 3): cancel of one reservation sent 200 times at once -> cancelled once, stock back once', async () => {
    await createProduct('DUP-3', 10);
    const r = (await t.http('POST', '/products/DUP-3/reservations', { key: 'r', body: { quantity: 4 } })).body;
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        t.http('POST', `/reservations/${r.id}/cancel`, i % 2 === 0 ? { key: 'cancel-key' } : {}),
      ),
    );
    expect(answers.every((a) => a.status === 200 && a.body.status === 'cancelled')).toBe(true);
    expect((await t.http('GET', '/products/DUP-3/inventory')).body).toMatchObject({
      reserved: 0,
      purchased: 0,
      available: 10,
    });
    const { rows } = await t.db.sql.query(
      `select count(*)::int as n from inventory_events where sku = 'DUP-3' and type = 'cancelled'`,
    );
    expect(rows[0].n).toBe(1);
  });

  it('G2: 100 purchases racing 100 cancels of one reservation -> exactly one of them wins, the rest agree', async () => {
    await createProduct('RACE-1', 10);
    const r = (await t.http('POST', '/products/RACE-1/reservations', { key: 'r', body: { quantity: 2 } })).body;
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => t.http('POST', `/reservations/${r.id}/${i % 2 ? 'purchase' : 'cancel'}`)),
    );
    const final = (await t.http('GET', `/reservations/${r.id}`)).body.status;
    expect(['purchased', 'cancelled']).toContain(final);
    for (const a of answers) {
      if (a.status === 200) expect(a.body.status).toBe(final);
      else expect(a.body.code).toBe(final === 'purchased' ? 'reservation_purchased' : 'reservation_cancelled');
    }
    expect(await databaseViolations(t.db.sql)).toEqual([]);
  });
});
