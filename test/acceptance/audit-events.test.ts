import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stockMax } from '../../src/engine/limits.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { waitUntil } from '../support/database.ts';

let t: TestApp;
let keySeq = 0;
const key = () => `audit-${++keySeq}`;

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

async function product(sku: string, stock: number) {
  expect((await t.http('POST', '/products', { body: { sku, name: sku, stock } })).status).toBe(201);
}

const reserve = (sku: string, quantity: number, options: { ttlSeconds?: number; key?: string } = {}) =>
  t.http('POST', `/products/${sku}/reservations`, {
    key: options.key ?? key(),
    body: { quantity, ttlSeconds: options.ttlSeconds ?? 600 },
  });
const adjust = (sku: string, delta: number, reason: string, k = key()) =>
  t.http('POST', `/products/${sku}/stock-adjustments`, { key: k, body: { delta, reason } });

async function productEvents(sku: string): Promise<any[]> {
  const res = await t.http('GET', `/products/${sku}/events?limit=1000`);
  expect(res.status).toBe(200);
  expect(res.body.next).toBeNull();
  return res.body.events;
}

const lastEvent = async (sku: string) => (await productEvents(sku)).at(-1);

describe('audit events', () => {
  it('G7: every change is an event in seq order, carrying the counters right after it and who asked', async () => {
    await product('A-1', 10);
    await adjust('A-1', 5, 'delivery', 'adjust-key');
    const r1 = (
      await t.http('POST', '/products/A-1/reservations', {
        key: 'reserve-key',
        body: { quantity: 3 },
        headers: { 'x-request-id': 'req-42' },
      })
    ).body;
    await t.http('POST', `/reservations/${r1.id}/purchase`);
    const r2 = (await reserve('A-1', 2)).body;
    await t.http('POST', `/reservations/${r2.id}/cancel`, { key: 'cancel-key' });

    const events = await productEvents('A-1');
    expect(events.map((e) => [e.seq, e.type, e.inventory])).toEqual([
      [1, 'product_created', { total: 10, reserved: 0, purchased: 0 }],
      [2, 'stock_adjusted', { total: 15, reserved: 0, purchased: 0 }],
      [3, 'reserved', { total: 15, reserved: 3, purchased: 0 }],
      [4, 'purchased', { total: 15, reserved: 0, purchased: 3 }],
      [5, 'reserved', { total: 15, reserved: 2, purchased: 3 }],
      [6, 'cancelled', { total: 15, reserved: 0, purchased: 3 }],
    ]);
    expect(events[1]).toMatchObject({ delta: 5, reason: 'delivery', idempotencyKey: 'adjust-key', source: 'api' });
    expect(events[2]).toMatchObject({
      reservationId: r1.id,
      quantity: 3,
      requestId: 'req-42',
      idempotencyKey: 'reserve-key',
    });
    expect(events[5]).toMatchObject({ reservationId: r2.id, quantity: 2, idempotencyKey: 'cancel-key' });
    // Absent fields are left out, never null; `at` is RFC 3339 in UTC.
    expect(Object.keys(events[0]).sort()).toEqual([
      'at',
      'inventory',
      'position',
      'requestId',
      'seq',
      'sku',
      'source',
      'type',
    ]);
    expect(events[3]).not.toHaveProperty('idempotencyKey');
    for (const e of events) expect(e.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const positions = events.map((e) => e.position);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    // The inventory endpoint and the newest event agree: the events replay to the row.
    const inventory = (await t.http('GET', '/products/A-1/inventory')).body;
    expect(events.at(-1).inventory).toEqual({
      total: inventory.total,
      reserved: inventory.reserved,
      purchased: inventory.purchased,
    });
    expect(events.at(-1).seq).toBe(inventory.version);
  });

  it('G7: insufficient_stock on a reservation is a rejected event with the requested quantity', async () => {
    await product('A-2', 2);
    expect((await reserve('A-2', 3, { key: 'too-many' })).body.code).toBe('insufficient_stock');
    expect(await lastEvent('A-2')).toMatchObject({
      seq: 2,
      type: 'rejected',
      code: 'insufficient_stock',
      quantity: 3,
      idempotencyKey: 'too-many',
      inventory: { total: 2, reserved: 0, purchased: 0 },
    });
  });

  it('G7: insufficient_stock on a stock adjustment is a rejected event with its delta and reason', async () => {
    await product('A-3', 5);
    await reserve('A-3', 4);
    expect((await adjust('A-3', -2, 'breakage')).body.code).toBe('insufficient_stock');
    expect(await lastEvent('A-3')).toMatchObject({
      seq: 3,
      type: 'rejected',
      code: 'insufficient_stock',
      delta: -2,
      reason: 'breakage',
      inventory: { total: 5, reserved: 4 },
    });
  });

  it('G7: stock_limit_exceeded is a rejected event', async () => {
    await product('A-4', stockMax);
    expect((await adjust('A-4', 1, 'one too many')).body.code).toBe('stock_limit_exceeded');
    expect(await lastEvent('A-4')).toMatchObject({
      seq: 2,
      type: 'rejected',
      code: 'stock_limit_exceeded',
      delta: 1,
      inventory: { total: stockMax },
    });
  });

  it('G7: reservation_cancelled and reservation_purchased are rejected events about the reservation', async () => {
    await product('A-5', 5);
    const cancelled = (await reserve('A-5', 1)).body;
    const purchased = (await reserve('A-5', 2)).body;
    await t.http('POST', `/reservations/${cancelled.id}/cancel`);
    await t.http('POST', `/reservations/${purchased.id}/purchase`);
    expect((await t.http('POST', `/reservations/${cancelled.id}/purchase`)).body.code).toBe('reservation_cancelled');
    expect((await t.http('POST', `/reservations/${purchased.id}/cancel`)).body.code).toBe('reservation_purchased');
    const [a, b] = (await productEvents('A-5')).slice(-2);
    expect(a).toMatchObject({
      type: 'rejected',
      code: 'reservation_cancelled',
      reservationId: cancelled.id,
      quantity: 1,
    });
    expect(b).toMatchObject({
      type: 'rejected',
      code: 'reservation_purchased',
      reservationId: purchased.id,
      quantity: 2,
    });
    expect(b.inventory).toEqual({ total: 5, reserved: 0, purchased: 2 });
  });

  it('G6, G7: an expiry by the sweeper is an expired event from the sweeper with lateMs; a later purchase is rejected reservation_expired', async () => {
    await product('A-6', 3);
    const r = (await reserve('A-6', 2, { ttlSeconds: 1 })).body;
    await waitUntil(
      async () => (await t.http('GET', `/reservations/${r.id}`)).body.status === 'expired',
      5000,
      'the sweeper expired the reservation',
    );
    expect((await t.http('POST', `/reservations/${r.id}/purchase`)).body.code).toBe('reservation_expired');

    const res = await t.http('GET', `/reservations/${r.id}/events`);
    expect(res.status).toBe(200);
    expect(res.body.next).toBeNull();
    const [reserved, expired, rejected] = res.body.events;
    expect(res.body.events).toHaveLength(3);
    expect(reserved).toMatchObject({ seq: 2, type: 'reserved', reservationId: r.id, source: 'api' });
    expect(expired).toMatchObject({
      seq: 3,
      type: 'expired',
      reservationId: r.id,
      quantity: 2,
      source: 'sweeper',
      inventory: { reserved: 0 },
    });
    expect(expired.lateMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(expired.at) - Date.parse(r.expiresAt)).toBe(expired.lateMs);
    expect(expired).not.toHaveProperty('requestId');
    expect(expired).not.toHaveProperty('idempotencyKey');
    expect(rejected).toMatchObject({
      seq: 4,
      type: 'rejected',
      code: 'reservation_expired',
      reservationId: r.id,
      source: 'api',
    });
  });

  it('unknown products and reservations are 404; bad page parameters are 400 validation_failed', async () => {
    expect((await t.http('GET', '/products/NOPE/events')).body.code).toBe('product_not_found');
    expect((await t.http('GET', '/reservations/00000000-0000-4000-8000-000000000000/events')).body.code).toBe(
      'reservation_not_found',
    );
    await product('A-7', 1);
    for (const query of ['limit=0', 'limit=1001', 'limit=abc', 'limit=', 'after=-1', 'after=1.5', 'extra=1']) {
      const res = await t.http('GET', `/products/A-7/events?${query}`);
      expect([query, res.status, res.body.code]).toEqual([query, 400, 'validation_failed']);
    }
    expect((await t.http('GET', '/events?limit=0')).body.code).toBe('validation_failed');
  });

  it('an `after` past the end is an empty page, not an error, on a product and on the whole log', async () => {
    await product('A-9', 1);
    const { rows } = await t.db.sql.query('select max(id)::text as last from inventory_events');
    const pastTheEnd = BigInt(rows[0].last) + 1000n;
    for (const target of ['/products/A-9/events?after=5', `/events?after=${pastTheEnd}`]) {
      const res = await t.http('GET', target);
      const empty = { target, status: 200, body: { events: [], next: null } };
      expect({ target, status: res.status, body: res.body }).toEqual(empty);
    }
  });

  it('G7: paging a product returns each event exactly once, in seq order, and next is null at the end', async () => {
    await product('A-8', 100);
    for (let i = 0; i < 12; i++) await reserve('A-8', 1);
    const seqs: number[] = [];
    let after = 0;
    for (let pages = 0; pages < 10; pages++) {
      const res = await t.http('GET', `/products/A-8/events?after=${after}&limit=5`);
      seqs.push(...res.body.events.map((e: any) => e.seq));
      if (res.body.next === null) break;
      expect(res.body.next).toBe(seqs.at(-1));
      after = res.body.next;
    }
    expect(seqs).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
  });

  it('G7: paging GET /events while writes continue returns every event exactly once, in commit order', async () => {
    const skus = ['L-1', 'L-2', 'L-3', 'L-4'];
    for (const sku of skus) await product(sku, 1_000_000);
    let writing = true;
    const writers = Promise.all(
      skus.map(async (sku) => {
        for (let i = 0; i < 40; i++) await Promise.all([reserve(sku, 1), reserve(sku, 1), adjust(sku, 1, 'restock')]);
      }),
    ).finally(() => {
      writing = false;
    });

    const seen: number[] = [];
    let after = 0;
    const readPage = async () => {
      const res = await t.http('GET', `/events?after=${after}&limit=37`);
      expect(res.status).toBe(200);
      const positions: number[] = res.body.events.map((e: any) => e.position);
      seen.push(...positions);
      if (positions.length > 0) after = positions.at(-1)!;
      if (res.body.next !== null) expect(res.body.next).toBe(after);
      return res.body.next === null;
    };
    while (writing) await readPage();
    await writers;
    // Once the writers are done, the log settles: read until a page says nothing more follows.
    await waitUntil(readPage, 10_000, 'GET /events reached the end of the log');

    const { rows } = await t.db.sql.query('select id::int from inventory_events order by tx_id, id');
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(rows.map((r) => r.id));
  });

  it('every event route has response schemas in /openapi.json', async () => {
    const doc = (await t.http('GET', '/openapi.json')).body;
    for (const path of ['/products/{sku}/events', '/reservations/{id}/events', '/events']) {
      const responses = doc.paths[path].get.responses;
      expect(responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/EventPage' });
      expect(responses).toHaveProperty('400');
    }
    expect(doc.components.schemas.EventPage.properties.events.items).toEqual({ $ref: '#/components/schemas/Event' });
    expect(doc.components.schemas.Event.properties).toHaveProperty('inventory');
  });
});
