import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { waitUntil } from '../support/database.ts';

let t: TestApp;
let keySeq = 0;
const key = () => `key-${++keySeq}`;

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

async function product(sku: string, stock: number) {
  const res = await t.http('POST', '/products', { body: { sku, name: sku, stock } });
  expect(res.status).toBe(201);
}

async function inventory(sku: string) {
  return (await t.http('GET', `/products/${sku}/inventory`)).body;
}

async function reserve(sku: string, quantity: number, ttlSeconds?: number, k = key()) {
  return t.http('POST', `/products/${sku}/reservations`, {
    key: k,
    body: ttlSeconds === undefined ? { quantity } : { quantity, ttlSeconds },
  });
}

describe('reservations', () => {
  it('a reservation takes stock out of available at once (201, active)', async () => {
    await product('R-1', 10);
    const res = await reserve('R-1', 3);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ sku: 'R-1', quantity: 3, status: 'active' });
    expect(Date.parse(res.body.expiresAt) - Date.parse(res.body.createdAt)).toBe(600_000);
    expect(await inventory('R-1')).toMatchObject({
      total: 10,
      reserved: 3,
      available: 7,
      activeReservations: 1,
      version: 2,
    });
    const got = await t.http('GET', `/reservations/${res.body.id}`);
    expect(got.body).toEqual(res.body);
  });

  it('reservation ids are time-ordered UUIDs (version 7): a later reservation sorts after an earlier one', async () => {
    await product('R-ID', 10);
    const first = (await reserve('R-ID', 1)).body.id as string;
    const cart = await t.http('POST', '/reservations', { key: key(), body: { lines: [{ sku: 'R-ID', quantity: 1 }] } });
    const second = cart.body.id as string;
    for (const id of [first, second])
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(first < second).toBe(true);
  });

  it('more than available is 409 insufficient_stock and changes no counter', async () => {
    await product('R-2', 2);
    const res = await reserve('R-2', 3);
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('insufficient_stock');
    expect(await inventory('R-2')).toMatchObject({ reserved: 0, available: 2 });
  });

  it('purchase is exactly once: purchasing again answers the same 200 without a second deduction', async () => {
    await product('R-3', 5);
    const r = (await reserve('R-3', 2)).body;
    const first = await t.http('POST', `/reservations/${r.id}/purchase`);
    const again = await t.http('POST', `/reservations/${r.id}/purchase`);
    expect(first.status).toBe(200);
    expect(first.body.status).toBe('purchased');
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(await inventory('R-3')).toMatchObject({ reserved: 0, purchased: 2, available: 3 });
  });

  it('cancel returns the stock; cancelling again answers the same 200', async () => {
    await product('R-4', 5);
    const r = (await reserve('R-4', 2)).body;
    const first = await t.http('POST', `/reservations/${r.id}/cancel`);
    const again = await t.http('POST', `/reservations/${r.id}/cancel`);
    expect(first.body.status).toBe('cancelled');
    expect(again.body).toEqual(first.body);
    expect(await inventory('R-4')).toMatchObject({ reserved: 0, purchased: 0, available: 5 });
  });

  it('purchase of a cancelled reservation is 409 reservation_cancelled; cancel of a purchased one is 409 reservation_purchased', async () => {
    await product('R-5', 5);
    const a = (await reserve('R-5', 1)).body;
    const b = (await reserve('R-5', 1)).body;
    await t.http('POST', `/reservations/${a.id}/cancel`);
    await t.http('POST', `/reservations/${b.id}/purchase`);
    expect((await t.http('POST', `/reservations/${a.id}/purchase`)).body.code).toBe('reservation_cancelled');
    expect((await t.http('POST', `/reservations/${b.id}/cancel`)).body.code).toBe('reservation_purchased');
    expect(await inventory('R-5')).toMatchObject({ reserved: 0, purchased: 1, available: 4 });
  });

  it('an unknown reservation is 404 reservation_not_found', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    expect((await t.http('GET', `/reservations/${id}`)).body.code).toBe('reservation_not_found');
    expect((await t.http('POST', `/reservations/${id}/purchase`)).body.code).toBe('reservation_not_found');
    expect((await t.http('GET', '/reservations/not-a-uuid')).body.code).toBe('validation_failed');
  });

  it('reserve on an unknown product is 404 product_not_found', async () => {
    expect((await reserve('R-NONE', 1)).body.code).toBe('product_not_found');
  });

  it('G6: the sweeper expires a reservation after its TTL and its stock is available again', async () => {
    await product('R-6', 3);
    const r = (await reserve('R-6', 2, 1)).body;
    expect(await inventory('R-6')).toMatchObject({ available: 1 });
    await waitUntil(
      async () => (await t.http('GET', `/reservations/${r.id}`)).body.status === 'expired',
      5000,
      'the reservation expired',
    );
    expect(await inventory('R-6')).toMatchObject({ reserved: 0, available: 3, activeReservations: 0 });
    expect((await t.http('POST', `/reservations/${r.id}/purchase`)).body.code).toBe('reservation_expired');
  });

  it('stock adjustments add and remove stock; removing below what is held is 409 insufficient_stock', async () => {
    await product('R-7', 5);
    await reserve('R-7', 4);
    const up = await t.http('POST', '/products/R-7/stock-adjustments', {
      key: key(),
      body: { delta: 3, reason: 'delivery' },
    });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ total: 8, reserved: 4, available: 4 });
    const down = await t.http('POST', '/products/R-7/stock-adjustments', {
      key: key(),
      body: { delta: -5, reason: 'breakage' },
    });
    expect(down.status).toBe(409);
    expect(down.body.code).toBe('insufficient_stock');
    expect(await inventory('R-7')).toMatchObject({ total: 8 });
  });
});

describe('idempotency', () => {
  it('G2: a retried reserve with the same Idempotency-Key replays the stored 201 and moves stock once', async () => {
    await product('I-1', 5);
    const first = await reserve('I-1', 2, undefined, 'same-key');
    const again = await reserve('I-1', 2, undefined, 'same-key');
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await inventory('I-1')).toMatchObject({ reserved: 2 });
  });

  it('G2: a replayed rejection answers the same 409 even after stock came back', async () => {
    await product('I-2', 1);
    const first = await reserve('I-2', 2, undefined, 'too-many');
    await t.http('POST', '/products/I-2/stock-adjustments', { key: key(), body: { delta: 5, reason: 'restock' } });
    const again = await reserve('I-2', 2, undefined, 'too-many');
    expect(first.status).toBe(409);
    expect(again.status).toBe(409);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
  });

  it('the same key with a different payload is 422 idempotency_key_reused and changes nothing', async () => {
    await product('I-3', 5);
    await reserve('I-3', 1, undefined, 'k-reused');
    const res = await reserve('I-3', 2, undefined, 'k-reused');
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('idempotency_key_reused');
    expect(await inventory('I-3')).toMatchObject({ reserved: 1 });
  });

  it('reserve and stock-adjustments without an Idempotency-Key are 400 idempotency_key_required', async () => {
    await product('I-4', 5);
    const r = await t.http('POST', '/products/I-4/reservations', { body: { quantity: 1 } });
    expect(r.body.code).toBe('idempotency_key_required');
    const a = await t.http('POST', '/products/I-4/stock-adjustments', { body: { delta: 1, reason: 'x' } });
    expect(a.body.code).toBe('idempotency_key_required');
    const long = await t.http('POST', '/products/I-4/reservations', { key: 'k'.repeat(256), body: { quantity: 1 } });
    expect(long.body.code).toBe('idempotency_key_required');
    expect(await inventory('I-4')).toMatchObject({ reserved: 0, total: 5, version: 1 });
  });
});
