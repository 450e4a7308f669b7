import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { bulkAdjustmentsScope, itemKeyOf } from '../../src/engine/bulk-adjustments.ts';
import { systemClock } from '../../src/engine/clock.ts';
import { bulkItemsMax } from '../../src/engine/limits.ts';
import { bulkFingerprintOf } from '../../src/engine/fingerprint.ts';
import { startTestApp, type HttpResponse, type TestApp } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startEngine } from '../support/engine.ts';

// POST /stock-adjustments/bulk through real HTTP, on two instances over one database: one by one
// (a result per item, each as the single adjustment would answer it) or atomic (all or nothing,
// as a cart), every outcome stored under the call's key and replayed.

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

interface Adjustment {
  sku: string;
  delta: number;
  reason: string;
}

const adjust = (t: TestApp, key: string | undefined, adjustments: unknown[], atomic?: boolean) =>
  t.http('POST', '/stock-adjustments/bulk', {
    key,
    body: atomic === undefined ? { adjustments } : { adjustments, atomic },
  });
const replayed = (res: HttpResponse<unknown>) => res.headers['idempotent-replayed'];

async function create(sku: string, stock: number): Promise<void> {
  expect((await a.http('POST', '/products', { body: { sku, name: sku, stock } })).status).toBe(201);
}

/** Stock held by a reservation, so that a large enough negative delta is refused. */
async function reserve(sku: string, quantity: number): Promise<void> {
  const res = await a.http('POST', `/products/${sku}/reservations`, { key: `r-${sku}`, body: { quantity } });
  expect(res.status).toBe(201);
}

async function totals(skus: readonly string[]): Promise<Record<string, { total: number; version: number }>> {
  const { rows } = await db.sql.query(
    'select sku, total::int, version::int from products where sku = any($1::text[]) order by sku',
    [skus],
  );
  return Object.fromEntries(rows.map((r) => [r.sku, { total: r.total, version: r.version }]));
}

async function eventsAfterCreation(sku: string) {
  const { rows } = await db.sql.query(
    `select type, delta::int, reason, code, idempotency_key, tx_id::text
       from inventory_events where sku = $1::text and seq > 1 order by seq`,
    [sku],
  );
  return rows;
}

describe('POST /stock-adjustments/bulk: what the body must be', () => {
  it('an Idempotency-Key is required: 400 idempotency_key_required without one, nothing applied', async () => {
    await create('BA-KEYLESS', 5);
    const res = await adjust(a, undefined, [{ sku: 'BA-KEYLESS', delta: 1, reason: 'count' }]);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('idempotency_key_required');
    expect(await totals(['BA-KEYLESS'])).toEqual({ 'BA-KEYLESS': { total: 5, version: 1 } });
  });

  it('an item without delta is 400 for the whole call, naming the item; nothing is applied', async () => {
    await create('BA-SCHEMA-1', 5);
    await create('BA-SCHEMA-2', 5);
    const res = await adjust(a, 'ba-schema', [
      { sku: 'BA-SCHEMA-1', delta: 1, reason: 'count' },
      { sku: 'BA-SCHEMA-2', reason: 'count' },
    ]);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.detail).toContain('/adjustments/1');
    expect(await totals(['BA-SCHEMA-1', 'BA-SCHEMA-2'])).toEqual({
      'BA-SCHEMA-1': { total: 5, version: 1 },
      'BA-SCHEMA-2': { total: 5, version: 1 },
    });
  });

  it('a SKU named twice is 400 for the whole call naming both items; nothing applied, the key unused', async () => {
    await create('BA-TWICE', 5);
    const twice = [
      { sku: 'BA-TWICE', delta: 1, reason: 'count' },
      { sku: 'BA-TWICE', delta: 2, reason: 'count' },
    ];
    const res = await adjust(a, 'ba-twice', twice);
    expect(res.status).toBe(400);
    expect(res.body.detail).toBe('body /adjustments/1/sku names the SKU of /adjustments/0');
    expect(await totals(['BA-TWICE'])).toEqual({ 'BA-TWICE': { total: 5, version: 1 } });
    const fixed = await adjust(a, 'ba-twice', [twice[0]]);
    expect(fixed.status).toBe(200);
  });
});

describe('one by one (not atomic): a result per item', () => {
  it('each item as the single adjustment answers it: applied, short, over the limit, unknown', async () => {
    await create('BA-1-OK', 10);
    await create('BA-1-SHORT', 10);
    await reserve('BA-1-SHORT', 8);
    await create('BA-1-LIMIT', 2_147_483_000);
    const res = await adjust(a, 'ba-1', [
      { sku: 'BA-1-OK', delta: 5, reason: 'delivery' },
      { sku: 'BA-1-SHORT', delta: -3, reason: 'damaged' },
      { sku: 'BA-1-LIMIT', delta: 1000, reason: 'delivery' },
      { sku: 'BA-1-NONE', delta: 1, reason: 'delivery' },
    ]);
    expect(res.status).toBe(200);
    expect(res.body.results).toEqual([
      { sku: 'BA-1-OK', status: 200, inventory: expect.objectContaining({ sku: 'BA-1-OK', total: 15, version: 2 }) },
      { sku: 'BA-1-SHORT', status: 409, code: 'insufficient_stock' },
      { sku: 'BA-1-LIMIT', status: 409, code: 'stock_limit_exceeded' },
      { sku: 'BA-1-NONE', status: 404, code: 'product_not_found' },
    ]);
    // Applied on its own; the refusals are audited as the single route audits them.
    expect(await totals(['BA-1-OK', 'BA-1-SHORT', 'BA-1-LIMIT'])).toEqual({
      'BA-1-LIMIT': { total: 2_147_483_000, version: 2 },
      'BA-1-OK': { total: 15, version: 2 },
      'BA-1-SHORT': { total: 10, version: 3 },
    });
    expect((await eventsAfterCreation('BA-1-SHORT')).at(-1)).toMatchObject({
      type: 'rejected',
      code: 'insufficient_stock',
      delta: -3,
      reason: 'damaged',
      idempotency_key: itemKeyOf('ba-1'),
    });
  });

  it('G2: the same key and body replays the stored results (idempotent-replayed) and applies nothing', async () => {
    await create('BA-2', 10);
    const items = [{ sku: 'BA-2', delta: 4, reason: 'delivery' }];
    const first = await adjust(a, 'ba-2', items);
    const again = await adjust(b, 'ba-2', items);
    expect(first.status).toBe(200);
    expect(replayed(first)).toBeUndefined();
    expect(again.status).toBe(200);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(await totals(['BA-2'])).toEqual({ 'BA-2': { total: 14, version: 2 } });
  });

  it('the same key with another body, or with atomic set, is 422 idempotency_key_reused; nothing applied', async () => {
    await create('BA-3', 10);
    const items = [{ sku: 'BA-3', delta: 1, reason: 'delivery' }];
    await adjust(a, 'ba-3', items);
    const other = await adjust(a, 'ba-3', [{ sku: 'BA-3', delta: 2, reason: 'delivery' }]);
    const atomic = await adjust(a, 'ba-3', items, true);
    for (const res of [other, atomic]) {
      expect(res.status).toBe(422);
      expect(res.body.code).toBe('idempotency_key_reused');
    }
    expect(await totals(['BA-3'])).toEqual({ 'BA-3': { total: 11, version: 2 } });
  });

  it('G2: a call cut short after some items and retried with its key applies each item once', async () => {
    await create('BA-4-A', 10);
    await create('BA-4-B', 10);
    const items: Adjustment[] = [
      { sku: 'BA-4-A', delta: 3, reason: 'delivery' },
      { sku: 'BA-4-B', delta: 7, reason: 'delivery' },
    ];
    // The first attempt, as far as it got before the service died: the call's key claimed with its
    // body, and the first item applied under its own key on its product.
    const first = startEngine(db.url, systemClock);
    try {
      const key = {
        scope: bulkAdjustmentsScope,
        key: 'ba-4',
        fingerprint: bulkFingerprintOf(bulkAdjustmentsScope, { atomic: false, adjustments: items }),
      };
      expect(await first.store.claimKey(key, { kind: 'pending' }, Date.now())).toEqual({ type: 'claimed' });
      const applied = await first.registry.execute('BA-4-A', {
        type: 'adjust',
        delta: 3,
        reason: 'delivery',
        idempotencyKey: itemKeyOf('ba-4'),
        requestId: 'first-attempt',
      });
      expect(applied).toMatchObject({ type: 'done', outcome: { kind: 'inventory' } });
    } finally {
      await first.stop();
    }
    const retry = await adjust(b, 'ba-4', items);
    expect(retry.status).toBe(200);
    expect(retry.body.results.map((r: { status: number }) => r.status)).toEqual([200, 200]);
    expect(await totals(['BA-4-A', 'BA-4-B'])).toEqual({
      'BA-4-A': { total: 13, version: 2 },
      'BA-4-B': { total: 17, version: 2 },
    });
    const again = await adjust(a, 'ba-4', items);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(retry.body);
  });
});

describe('atomic: every item applies or none does', () => {
  it('G4: all applied in one transaction, one result per item', async () => {
    await create('BA-5-A', 10);
    await create('BA-5-B', 10);
    const res = await adjust(
      a,
      'ba-5',
      [
        { sku: 'BA-5-B', delta: -4, reason: 'count' },
        { sku: 'BA-5-A', delta: 6, reason: 'count' },
      ],
      true,
    );
    expect(res.status).toBe(200);
    expect(res.body.results).toEqual([
      { sku: 'BA-5-B', status: 200, inventory: expect.objectContaining({ total: 6, version: 2 }) },
      { sku: 'BA-5-A', status: 200, inventory: expect.objectContaining({ total: 16, version: 2 }) },
    ]);
    const [eventA] = await eventsAfterCreation('BA-5-A');
    const [eventB] = await eventsAfterCreation('BA-5-B');
    expect(eventA).toMatchObject({ type: 'stock_adjusted', delta: 6, idempotency_key: null });
    expect(eventB).toMatchObject({ type: 'stock_adjusted', delta: -4, idempotency_key: null });
    expect(eventA.tx_id).toBe(eventB.tx_id);
  });

  it('G4: one refused item refuses the call: 409 naming it, nothing applied, rejected on every product', async () => {
    await create('BA-6-A', 10);
    await create('BA-6-B', 10);
    await create('BA-6-C', 10);
    await reserve('BA-6-B', 9);
    const items = [
      { sku: 'BA-6-A', delta: 5, reason: 'recount' },
      { sku: 'BA-6-B', delta: -2, reason: 'recount' },
      { sku: 'BA-6-C', delta: -1, reason: 'recount' },
    ];
    const res = await adjust(a, 'ba-6', items, true);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({
      code: 'insufficient_stock',
      items: [{ sku: 'BA-6-B', code: 'insufficient_stock' }],
    });
    expect(await totals(['BA-6-A', 'BA-6-B', 'BA-6-C'])).toEqual({
      'BA-6-A': { total: 10, version: 2 },
      'BA-6-B': { total: 10, version: 3 },
      'BA-6-C': { total: 10, version: 2 },
    });
    const refusals = await Promise.all(
      ['BA-6-A', 'BA-6-B', 'BA-6-C'].map(async (sku) => (await eventsAfterCreation(sku)).at(-1)),
    );
    expect(refusals.map((e) => [e.type, e.code, e.delta, e.reason])).toEqual([
      ['rejected', 'insufficient_stock', 5, 'recount'],
      ['rejected', 'insufficient_stock', -2, 'recount'],
      ['rejected', 'insufficient_stock', -1, 'recount'],
    ]);
    expect(new Set(refusals.map((e) => e.tx_id)).size).toBe(1);
  });

  it('G2: a refused call is stored under its key: a retry gets the same 409, even once stock allows it', async () => {
    await create('BA-7', 10);
    await reserve('BA-7', 10);
    const items = [{ sku: 'BA-7', delta: -1, reason: 'recount' }];
    const first = await adjust(a, 'ba-7', items, true);
    await a.http('POST', '/products/BA-7/stock-adjustments', {
      key: 'ba-7-more',
      body: { delta: 5, reason: 'delivery' },
    });
    const again = await adjust(b, 'ba-7', items, true);
    expect(first.status).toBe(409);
    expect(again.status).toBe(409);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(await totals(['BA-7'])).toEqual({ 'BA-7': { total: 15, version: 4 } });
  });

  it('an unknown SKU is 404 product_not_found in unknownSkus; nothing written, the key stays unused', async () => {
    await create('BA-8', 10);
    const items = [
      { sku: 'BA-8', delta: 1, reason: 'count' },
      { sku: 'BA-8-NONE', delta: 1, reason: 'count' },
    ];
    const res = await adjust(a, 'ba-8', items, true);
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: 'product_not_found', unknownSkus: ['BA-8-NONE'] });
    expect(await totals(['BA-8'])).toEqual({ 'BA-8': { total: 10, version: 1 } });
    await create('BA-8-NONE', 0);
    const retry = await adjust(a, 'ba-8', items, true);
    expect(retry.status).toBe(200);
  });

  it('G1 G2: atomic calls via both instances racing reservations: each applied once, all or nothing', async () => {
    const skus = ['BA-9-A', 'BA-9-B', 'BA-9-C'];
    for (const sku of skus) await create(sku, 30);
    // Each call takes one unit of every product; singles take units of A. 30 units of A cannot
    // serve 20 calls and 20 singles: some of either are refused, none half applied.
    const calls = Array.from({ length: 20 }, (_, i) =>
      adjust(
        i % 2 === 0 ? a : b,
        `ba-9-${i}`,
        skus.map((sku) => ({ sku, delta: -1, reason: `call ${i}` })),
        true,
      ),
    );
    const singles = Array.from({ length: 20 }, (_, i) =>
      (i % 2 === 0 ? b : a).http('POST', '/products/BA-9-A/reservations', {
        key: `ba-9-s-${i}`,
        body: { quantity: 1 },
      }),
    );
    const [answers, reserved] = await Promise.all([Promise.all(calls), Promise.all(singles)]);
    const applied = answers.filter((r) => r.status === 200).length;
    const refused = answers.filter((r) => r.status === 409).length;
    expect(applied + refused).toBe(calls.length);
    const held = reserved.filter((r) => r.status === 201).length;
    const after = await totals(skus);
    expect(after['BA-9-A']!.total).toBe(30 - applied);
    expect(after['BA-9-B']!.total).toBe(30 - applied);
    expect(after['BA-9-C']!.total).toBe(30 - applied);
    expect(applied + held).toBeLessThanOrEqual(30);
    // Retries replay: no call applies twice.
    const retried = await Promise.all(
      answers.map((_, i) =>
        adjust(
          i % 2 === 0 ? b : a,
          `ba-9-${i}`,
          skus.map((sku) => ({ sku, delta: -1, reason: `call ${i}` })),
          true,
        ),
      ),
    );
    expect(retried.map((r) => r.status)).toEqual(answers.map((r) => r.status));
    expect((await totals(skus))['BA-9-A']!.total).toBe(30 - applied);
  });
});

describe('the largest calls', () => {
  it(`G4: an atomic call of ${bulkItemsMax} items, on as many products, commits in one transaction`, async () => {
    const skus = Array.from({ length: bulkItemsMax }, (_, i) => `BA-MAX-${i}`);
    const created = await a.http('POST', '/products/bulk', {
      body: { products: skus.map((sku) => ({ sku, name: sku, stock: 5 })) },
    });
    expect(created.status).toBe(200);
    const res = await adjust(
      b,
      'ba-max',
      skus.map((sku) => ({ sku, delta: 1, reason: 'max' })),
      true,
    );
    expect(res.status).toBe(200);
    expect(new Set(res.body.results.map((r: { status: number }) => r.status))).toEqual(new Set([200]));
    const { rows } = await db.sql.query(
      `select count(*)::int as events, count(distinct tx_id)::int as transactions, min(total)::int as total
         from inventory_events where reason = 'max'`,
    );
    expect(rows[0]).toEqual({ events: bulkItemsMax, transactions: 1, total: 6 });
  });
});

describe('the database after bulk adjustments', () => {
  it('G1-G4 G7: the SQL oracle and verify (its per-transaction cart check included) find nothing wrong', async () => {
    expect(await databaseViolations(db.sql)).toEqual([]);
    const report = await verifyDatabase(db.url);
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
