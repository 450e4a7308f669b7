import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { bulkBodyBytesMax, bulkItemsMax } from '../../src/engine/limits.ts';
import { startTestApp, type HttpResponse, type TestApp } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

// POST /products/bulk through real HTTP, on two instances over one database: each item answered
// as POST /products would answer it, the answer stored under the call's key and replayed, and the
// products usable by any instance's actors at once.

let db: TestDatabase;
let a: TestApp;
let b: TestApp;
beforeAll(async () => {
  db = await createTestDatabase();
  a = await startTestApp({ db });
  b = await startTestApp({ db });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
});

type Item = Record<string, unknown>;
const bulk = (t: TestApp, products: unknown[], key?: string) =>
  t.http('POST', '/products/bulk', { body: { products }, key });
const replayed = (res: HttpResponse<unknown>) => res.headers['idempotent-replayed'];
const statuses = (res: HttpResponse<any>) => res.body.results.map((r: { status: number }) => r.status);

async function eventCount(skus: readonly string[]): Promise<number> {
  const { rows } = await db.sql.query('select count(*)::int as n from inventory_events where sku = any($1::text[])', [
    skus,
  ]);
  return rows[0].n;
}

describe('POST /products/bulk: each item as POST /products would answer it', () => {
  it('mixed items: created, the same again, another product, invalid fields, a repeated SKU, in order', async () => {
    expect((await a.http('POST', '/products', { body: { sku: 'BP-SAME', name: 'Same', stock: 5 } })).status).toBe(201);
    expect((await a.http('POST', '/products', { body: { sku: 'BP-DIFF', name: 'Old', stock: 5 } })).status).toBe(201);
    const items: Item[] = [
      { sku: 'BP-NEW-1', name: 'New one', stock: 10 },
      { sku: 'BP-SAME', name: 'Same', stock: 5 },
      { sku: 'BP-DIFF', name: 'New name', stock: 5 },
      { sku: 'BP-BAD-STOCK', name: 'x', stock: -1 },
      { sku: 'BP-TEXT-STOCK', name: 'x', stock: '5' },
      { sku: 'BP-NO-NAME', stock: 1 },
      { sku: 'BP-EXTRA', name: 'x', stock: 1, colour: 'red' },
      { sku: 'BP-NEW-1', name: 'New one', stock: 10 },
      { sku: 'bad sku!', name: 'x', stock: 1 },
      { sku: 'BP-NEW-2', name: 'New two', stock: 0 },
    ];
    const res = await bulk(a, items);
    expect(res.status).toBe(200);
    expect(res.body.results).toEqual([
      { sku: 'BP-NEW-1', status: 201, product: expect.objectContaining({ sku: 'BP-NEW-1', name: 'New one' }) },
      { sku: 'BP-SAME', status: 200, product: expect.objectContaining({ sku: 'BP-SAME', name: 'Same' }) },
      { sku: 'BP-DIFF', status: 409, code: 'product_exists' },
      { sku: 'BP-BAD-STOCK', status: 400, code: 'validation_failed', field: 'stock' },
      // Types are not coerced in an item either: "5" is not 5.
      { sku: 'BP-TEXT-STOCK', status: 400, code: 'validation_failed', field: 'stock' },
      { sku: 'BP-NO-NAME', status: 400, code: 'validation_failed', field: 'name' },
      { sku: 'BP-EXTRA', status: 400, code: 'validation_failed', field: 'colour' },
      { sku: 'BP-NEW-1', status: 400, code: 'validation_failed', field: 'sku' },
      { sku: 'bad sku!', status: 400, code: 'validation_failed', field: 'sku' },
      { sku: 'BP-NEW-2', status: 201, product: expect.objectContaining({ sku: 'BP-NEW-2' }) },
    ]);
    expect(res.body.results[0].product.inventory).toEqual({
      sku: 'BP-NEW-1',
      total: 10,
      reserved: 0,
      purchased: 0,
      available: 10,
      activeReservations: 0,
      version: 1,
    });
    // Nothing of the refused items was written; the existing products are as they were.
    const { rows } = await db.sql.query(
      `select sku, name, total::int from products where sku like 'BP-%' or sku = 'bad sku!' order by sku`,
    );
    expect(rows).toEqual([
      { sku: 'BP-DIFF', name: 'Old', total: 5 },
      { sku: 'BP-NEW-1', name: 'New one', total: 10 },
      { sku: 'BP-NEW-2', name: 'New two', total: 0 },
      { sku: 'BP-SAME', name: 'Same', total: 5 },
    ]);
  });

  it('an existing product answers 200 as it is now: with its reservations, as POST /products does', async () => {
    await a.http('POST', '/products', { body: { sku: 'BP-NOW', name: 'Now', stock: 8 } });
    await a.http('POST', '/products/BP-NOW/reservations', { key: 'bp-now-r', body: { quantity: 3 } });
    const single = await a.http('POST', '/products', { body: { sku: 'BP-NOW', name: 'Now', stock: 8 } });
    const res = await bulk(b, [{ sku: 'BP-NOW', name: 'Now', stock: 8 }]);
    expect(res.body.results).toEqual([{ sku: 'BP-NOW', status: 200, product: single.body }]);
    expect(single.body.inventory).toMatchObject({ reserved: 3, available: 5, activeReservations: 1, version: 2 });
  });

  it("G7: hostile text in an item is that item's 400 naming the field; the other items are created", async () => {
    const res = await bulk(a, [
      { sku: 'BP-HOSTILE-1', name: 'lone \ud800 surrogate', stock: 1 },
      { sku: 'BP-HOSTILE-2', name: 'nul \u0000 inside', stock: 1 },
      { sku: 'BP-\ud800', name: 'x', stock: 1 },
      { sku: 'BP-HOSTILE-OK', name: 'fine', stock: 1 },
    ]);
    expect(res.body.results).toEqual([
      { sku: 'BP-HOSTILE-1', status: 400, code: 'validation_failed', field: 'name' },
      { sku: 'BP-HOSTILE-2', status: 400, code: 'validation_failed', field: 'name' },
      // A SKU that cannot be stored is not echoed either.
      { sku: null, status: 400, code: 'validation_failed', field: 'sku' },
      expect.objectContaining({ sku: 'BP-HOSTILE-OK', status: 201 }),
    ]);
  });

  it('the body itself is checked as an envelope: no items, too many, or an item that is no object is 400', async () => {
    const many = Array.from({ length: bulkItemsMax + 1 }, (_, i) => ({ sku: `BP-MANY-${i}`, name: 'x', stock: 1 }));
    for (const products of [[], many, [{ sku: 'BP-ENV', name: 'x', stock: 1 }, 'BP-ENV-2']]) {
      const res = await bulk(a, products);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    const noObject = await bulk(a, [{ sku: 'BP-ENV', name: 'x', stock: 1 }, 7]);
    expect(noObject.body.detail).toContain('/products/1');
    expect(await eventCount(['BP-ENV', 'BP-MANY-0'])).toBe(0);
  });
});

describe('products created in bulk are products like any other', () => {
  it("G7: each gets its product_created event (seq 1) carrying the call's request id and key", async () => {
    const res = await a.http('POST', '/products/bulk', {
      body: { products: [{ sku: 'BP-EV', name: 'Ev', stock: 4 }] },
      key: 'bp-ev',
      headers: { 'x-request-id': 'bulk-ev-1' },
    });
    expect(res.status).toBe(200);
    const events = (await b.http('GET', '/products/BP-EV/events')).body.events;
    expect(events).toEqual([
      expect.objectContaining({
        seq: 1,
        type: 'product_created',
        requestId: 'bulk-ev-1',
        idempotencyKey: 'bp-ev',
        inventory: { total: 4, reserved: 0, purchased: 0 },
      }),
    ]);
  });

  it('usable by every instance at once, also where an actor had just found the SKU unknown', async () => {
    const before = await b.http('POST', '/products/BP-USE-1/reservations', { key: 'bp-use-0', body: { quantity: 1 } });
    expect(before.status).toBe(404);
    await bulk(a, [
      { sku: 'BP-USE-1', name: 'Use', stock: 3 },
      { sku: 'BP-USE-2', name: 'Use', stock: 3 },
    ]);
    const onB = await b.http('POST', '/products/BP-USE-1/reservations', { key: 'bp-use-1', body: { quantity: 2 } });
    const onA = await a.http('POST', '/products/BP-USE-2/stock-adjustments', {
      key: 'bp-use-2',
      body: { delta: 2, reason: 'count' },
    });
    expect(onB.status).toBe(201);
    expect(onA.status).toBe(200);
    expect(onA.body).toMatchObject({ total: 5, version: 2 });
    expect((await a.http('GET', '/products/BP-USE-1/inventory')).body).toMatchObject({ reserved: 2, version: 2 });
  });
});

describe('POST /products/bulk with an Idempotency-Key (scoped to the route)', () => {
  const items = [
    { sku: 'BP-K-1', name: 'One', stock: 1 },
    { sku: 'BP-K-1', name: 'One', stock: 1 },
    { sku: 'BP-K-2', name: 'Two', stock: -2 },
  ];

  it('G2: the same key and body replays the stored results (idempotent-replayed) and writes nothing', async () => {
    const first = await bulk(a, items, 'bp-k');
    await a.http('POST', '/products/BP-K-1/reservations', { key: 'bp-k-r', body: { quantity: 1 } });
    const events = await eventCount(['BP-K-1', 'BP-K-2']);
    const again = await bulk(b, items, 'bp-k');
    expect(first.status).toBe(200);
    expect(statuses(first)).toEqual([201, 400, 400]);
    expect(replayed(first)).toBeUndefined();
    expect(again.status).toBe(200);
    expect(replayed(again)).toBe('true');
    // The stored answer, not the products now: BP-K-1 was reserved since.
    expect(again.body).toEqual(first.body);
    expect(await eventCount(['BP-K-1', 'BP-K-2'])).toBe(events);
  });

  it('the same key with another body is 422 idempotency_key_reused, and creates nothing', async () => {
    await bulk(a, [{ sku: 'BP-R-1', name: 'One', stock: 1 }], 'bp-r');
    const res = await bulk(a, [{ sku: 'BP-R-2', name: 'Two', stock: 1 }], 'bp-r');
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('idempotency_key_reused');
    expect((await a.http('GET', '/products/BP-R-2')).status).toBe(404);
  });

  it("the key is the route's: the same key on POST /products of one of its SKUs is another key", async () => {
    await bulk(a, [{ sku: 'BP-S-1', name: 'One', stock: 1 }], 'bp-s');
    const single = await a.http('POST', '/products', { key: 'bp-s', body: { sku: 'BP-S-1', name: 'One', stock: 1 } });
    expect(single.status).toBe(200);
    expect(replayed(single)).toBeUndefined();
    const { rows } = await db.sql.query(`select sku from idempotency_records where key = 'bp-s' order by sku`);
    expect(rows.map((r) => r.sku)).toEqual(['/products/bulk', 'BP-S-1']);
  });

  it('G2: the same call sent at once via both instances creates each product once; one answer for all', async () => {
    const body = Array.from({ length: 50 }, (_, i) => ({ sku: `BP-STORM-${i}`, name: 'Storm', stock: i }));
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => bulk(i % 2 === 0 ? a : b, body, 'bp-storm')),
    );
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 200));
    expect(answers.filter((r) => replayed(r) === undefined)).toHaveLength(1);
    for (const r of answers) expect(r.body).toEqual(answers[0]!.body);
    expect(statuses(answers[0]!)).toEqual(body.map(() => 201));
    expect(await eventCount(body.map((p) => p.sku))).toBe(body.length);
  });

  it('without a key, the same call at once through both instances creates each product once: 201 or 200', async () => {
    const body = Array.from({ length: 50 }, (_, i) => ({ sku: `BP-RACE-${i}`, name: 'Race', stock: 1 }));
    const [one, two] = await Promise.all([bulk(a, body), bulk(b, body)]);
    for (let i = 0; i < body.length; i++) {
      expect([one.body.results[i].status, two.body.results[i].status].sort()).toEqual([200, 201]);
    }
    expect(await eventCount(body.map((p) => p.sku))).toBe(body.length);
  });
});

describe('body limits', () => {
  it(`${bulkItemsMax} items of the longest names are accepted (up to ${bulkBodyBytesMax} bytes)`, async () => {
    const products = Array.from({ length: bulkItemsMax }, (_, i) => ({
      sku: `BP-LONG-${String(i).padStart(4, '0')}-${'x'.repeat(50)}`,
      name: 'n'.repeat(200),
      stock: 2_147_483_647,
    }));
    expect(JSON.stringify({ products }).length).toBeGreaterThan(256 * 1024);
    const res = await bulk(a, products);
    expect(res.status).toBe(200);
    expect(statuses(res)).toEqual(products.map(() => 201));
  });

  it(`a bulk body over ${bulkBodyBytesMax} bytes is 413 payload_too_large`, async () => {
    const rawBody = JSON.stringify({
      products: [{ sku: 'BP-HUGE', name: 'x', stock: 1, pad: 'p'.repeat(bulkBodyBytesMax) }],
    });
    const res = await a.http('POST', '/products/bulk', { rawBody, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('payload_too_large');
  });

  it('every other route keeps its 16 KiB: POST /products with a 17 KiB body is 413', async () => {
    const res = await a.http('POST', '/products', { body: { sku: 'BP-17K', name: 'x'.repeat(17 * 1024), stock: 1 } });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('payload_too_large');
  });
});

describe('the database after bulk creates', () => {
  it('G1-G4 G7: the SQL oracle and secventory verify find nothing wrong', async () => {
    expect(await databaseViolations(db.sql)).toEqual([]);
    const report = await verifyDatabase(db.url);
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
