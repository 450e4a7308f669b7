import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { startTestApp, type TestApp } from '../support/app.ts';

// Carts: reservations of several products at once, all or nothing, through the real service.

let t: TestApp;
let seq = 0;
beforeAll(async () => {
  t = await startTestApp({ env: { SECVENTORY_SWEEP_INTERVAL_MS: '100' } });
});
afterAll(async () => {
  await t?.close();
});

/** Products of their own for one test, with the given stocks. */
async function products(...stocks: number[]): Promise<string[]> {
  const run = ++seq;
  const skus = stocks.map((_, i) => `CART-${run}-${String.fromCharCode(65 + i)}`);
  for (const [i, sku] of skus.entries()) {
    expect((await t.http('POST', '/products', { body: { sku, name: sku, stock: stocks[i] } })).status).toBe(201);
  }
  return skus;
}

const available = async (sku: string) => (await t.http('GET', `/products/${sku}/inventory`)).body.available as number;
const cart = (lines: { sku: string; quantity: number }[], key = `cart-${++seq}`, ttlSeconds?: number) =>
  t.http('POST', '/reservations', { key, body: { lines, ...(ttlSeconds === undefined ? {} : { ttlSeconds }) } });

describe('POST /reservations', () => {
  it("reserves every line at once: 201, lines in the order sent, each product's available reduced", async () => {
    const [a, b, c] = await products(5, 5, 5);
    const r = await cart([
      { sku: c!, quantity: 1 },
      { sku: a!, quantity: 2 },
      { sku: b!, quantity: 3 },
    ]);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      status: 'active',
      lines: [
        { sku: c, quantity: 1 },
        { sku: a, quantity: 2 },
        { sku: b, quantity: 3 },
      ],
    });
    expect(r.body.sku).toBeUndefined();
    expect([await available(a!), await available(b!), await available(c!)]).toEqual([3, 2, 4]);
    expect((await t.http('GET', `/reservations/${r.body.id}`)).body).toEqual(r.body);
  });

  it('G1 all or nothing: one short line refuses the cart with 409 naming every short line, and nothing is reserved anywhere', async () => {
    const [a, b, c] = await products(5, 1, 0);
    const r = await cart([
      { sku: a!, quantity: 2 },
      { sku: b!, quantity: 2 },
      { sku: c!, quantity: 1 },
    ]);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('insufficient_stock');
    expect(r.body.lines).toEqual([
      { sku: b, requested: 2, available: 1 },
      { sku: c, requested: 1, available: 0 },
    ]);
    expect([await available(a!), await available(b!), await available(c!)]).toEqual([5, 1, 0]);
  });

  it('G7: a refused cart is audited on every product it named', async () => {
    const [a, b] = await products(5, 0);
    expect(
      (
        await cart([
          { sku: a!, quantity: 1 },
          { sku: b!, quantity: 1 },
        ])
      ).status,
    ).toBe(409);
    for (const sku of [a, b]) {
      const events = (await t.http('GET', `/products/${sku}/events`)).body.events as { type: string; code?: string }[];
      expect(events.at(-1)).toMatchObject({ type: 'rejected', code: 'insufficient_stock' });
    }
  });

  it('404 names every unknown SKU and reserves nothing', async () => {
    const [a] = await products(5);
    const r = await cart([
      { sku: a!, quantity: 1 },
      { sku: 'NO-SUCH-1', quantity: 1 },
      { sku: 'NO-SUCH-2', quantity: 1 },
    ]);
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('product_not_found');
    expect(r.body.unknownSkus).toEqual(['NO-SUCH-1', 'NO-SUCH-2']);
    expect(await available(a!)).toBe(5);
  });

  it('400 for a SKU named twice, no lines, more than 100 lines, or no Idempotency-Key', async () => {
    const [a] = await products(5);
    expect(
      (
        await cart([
          { sku: a!, quantity: 1 },
          { sku: a!, quantity: 1 },
        ])
      ).status,
    ).toBe(400);
    expect((await cart([])).status).toBe(400);
    expect((await cart(Array.from({ length: 101 }, (_, i) => ({ sku: `S${i}`, quantity: 1 })))).status).toBe(400);
    const noKey = await t.http('POST', '/reservations', { body: { lines: [{ sku: a, quantity: 1 }] } });
    expect([noKey.status, noKey.body.code]).toEqual([400, 'idempotency_key_required']);
    expect(await available(a!)).toBe(5);
  });

  it('G2: the same key and body replays the stored 201; another body under it is 422; stock moves once', async () => {
    const [a, b] = await products(5, 5);
    const lines = [
      { sku: a!, quantity: 1 },
      { sku: b!, quantity: 1 },
    ];
    const first = await cart(lines, 'same-key');
    const again = await cart(lines, 'same-key');
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    expect((await cart([{ sku: a!, quantity: 2 }], 'same-key')).status).toBe(422);
    expect([await available(a!), await available(b!)]).toEqual([4, 4]);
  });

  it('G2: 20 duplicates of one cart in flight at once reserve it once', async () => {
    const [a, b] = await products(5, 5);
    const lines = [
      { sku: a!, quantity: 1 },
      { sku: b!, quantity: 1 },
    ];
    const answers = await Promise.all(Array.from({ length: 20 }, () => cart(lines, 'dup-key')));
    expect(answers.every((r) => r.status === 201)).toBe(true);
    expect(new Set(answers.map((r) => r.body.id)).size).toBe(1);
    expect([await available(a!), await available(b!)]).toEqual([4, 4]);
  });
});

describe('operations on a cart', () => {
  it('partial purchase: each named line buys what it names, the rest returns to available in the same step', async () => {
    const [a, b] = await products(5, 5);
    const { body: r } = await cart([
      { sku: a!, quantity: 3 },
      { sku: b!, quantity: 2 },
    ]);
    const bought = await t.http('POST', `/reservations/${r.id}/purchase`, {
      body: { lines: [{ sku: a, quantity: 1 }] },
    });
    expect(bought.status).toBe(200);
    expect(bought.body).toMatchObject({
      status: 'purchased',
      lines: [
        { sku: a, quantity: 3, purchasedQuantity: 1 },
        { sku: b, quantity: 2, purchasedQuantity: 0 },
      ],
    });
    expect((await t.http('GET', `/products/${a}/inventory`)).body).toMatchObject({
      reserved: 0,
      purchased: 1,
      available: 4,
    });
    expect((await t.http('GET', `/products/${b}/inventory`)).body).toMatchObject({
      reserved: 0,
      purchased: 0,
      available: 5,
    });
    const events = (await t.http('GET', `/products/${a}/events`)).body.events as { type: string; quantity?: number }[];
    expect(events.slice(-2).map((e) => [e.type, e.quantity])).toEqual([
      ['purchased', 1],
      ['released', 2],
    ]);
  });

  it('the same purchase again answers the same 200; another purchase of it is 409 reservation_purchased', async () => {
    const [a, b] = await products(5, 5);
    const { body: r } = await cart([
      { sku: a!, quantity: 2 },
      { sku: b!, quantity: 2 },
    ]);
    const ask = {
      lines: [
        { sku: a, quantity: 2 },
        { sku: b, quantity: 1 },
      ],
    };
    const first = await t.http('POST', `/reservations/${r.id}/purchase`, { body: ask });
    const again = await t.http('POST', `/reservations/${r.id}/purchase`, { body: ask });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const other = await t.http('POST', `/reservations/${r.id}/purchase`);
    expect([other.status, other.body.code]).toEqual([409, 'reservation_purchased']);
    expect((await t.http('GET', `/products/${b}/inventory`)).body).toMatchObject({ purchased: 1, available: 4 });
  });

  it('buying more than a line holds is 409 quantity_exceeds_reservation, and nothing is bought on any line', async () => {
    const [a, b] = await products(5, 5);
    const { body: r } = await cart([
      { sku: a!, quantity: 2 },
      { sku: b!, quantity: 2 },
    ]);
    const over = await t.http('POST', `/reservations/${r.id}/purchase`, {
      body: {
        lines: [
          { sku: a, quantity: 1 },
          { sku: b, quantity: 3 },
        ],
      },
    });
    expect([over.status, over.body.code]).toEqual([409, 'quantity_exceeds_reservation']);
    expect((await t.http('GET', `/reservations/${r.id}`)).body.status).toBe('active');
    expect([await available(a!), await available(b!)]).toEqual([3, 3]);
  });

  it('a purchase naming a SKU that is not in the cart is 400', async () => {
    const [a, b] = await products(5, 5);
    const { body: r } = await cart([
      { sku: a!, quantity: 1 },
      { sku: b!, quantity: 1 },
    ]);
    const wrong = await t.http('POST', `/reservations/${r.id}/purchase`, {
      body: { lines: [{ sku: 'NOT-IN-CART', quantity: 1 }] },
    });
    expect(wrong.status).toBe(400);
    expect((await t.http('GET', `/reservations/${r.id}`)).body.status).toBe('active');
  });

  it('cancel returns every line to available at once', async () => {
    const [a, b] = await products(5, 5);
    const { body: r } = await cart([
      { sku: a!, quantity: 2 },
      { sku: b!, quantity: 4 },
    ]);
    const cancelled = await t.http('POST', `/reservations/${r.id}/cancel`);
    expect(cancelled.body.status).toBe('cancelled');
    expect([await available(a!), await available(b!)]).toEqual([5, 5]);
  });

  it('extend moves expiresAt to now + ttlSeconds, never past the 24 h cap; at the cap it is 409', async () => {
    const [a, b] = await products(5, 5);
    const { body: r } = await cart(
      [
        { sku: a!, quantity: 1 },
        { sku: b!, quantity: 1 },
      ],
      undefined,
      60,
    );
    const extended = await t.http('POST', `/reservations/${r.id}/extend`, { body: { ttlSeconds: 3600 } });
    expect(extended.status).toBe(200);
    expect(Date.parse(extended.body.expiresAt) - Date.now()).toBeGreaterThan(3500_000);
    const capped = await t.http('POST', `/reservations/${r.id}/extend`, { body: { ttlSeconds: 86_400 } });
    expect(Date.parse(capped.body.expiresAt)).toBe(Date.parse(r.createdAt) + 86_400_000);
    const atCap = await t.http('POST', `/reservations/${r.id}/extend`, { body: { ttlSeconds: 10 } });
    expect([atCap.status, atCap.body.code]).toEqual([409, 'reservation_lifetime_exceeded']);
  });

  it('a one-line reservation can be bought in part too', async () => {
    const [a] = await products(5);
    const { body: r } = await t.http('POST', `/products/${a}/reservations`, {
      key: `one-${seq}`,
      body: { quantity: 3 },
    });
    expect(r.lines).toEqual([{ sku: a, quantity: 3 }]);
    const bought = await t.http('POST', `/reservations/${r.id}/purchase`, {
      body: { lines: [{ sku: a, quantity: 2 }] },
    });
    expect(bought.body).toMatchObject({ sku: a, quantity: 3, lines: [{ sku: a, quantity: 3, purchasedQuantity: 2 }] });
    expect((await t.http('GET', `/products/${a}/inventory`)).body).toMatchObject({ purchased: 2, available: 3 });
  });

  it('G6: the sweeper expires a cart as a whole and its stock returns on every product', async () => {
    const [a, b] = await products(5, 5);
    const { body: r } = await cart(
      [
        { sku: a!, quantity: 2 },
        { sku: b!, quantity: 2 },
      ],
      undefined,
      1,
    );
    for (let i = 0; i < 50 && (await t.http('GET', `/reservations/${r.id}`)).body.status === 'active'; i++)
      await new Promise((x) => setTimeout(x, 100));
    expect((await t.http('GET', `/reservations/${r.id}`)).body.status).toBe('expired');
    expect([await available(a!), await available(b!)]).toEqual([5, 5]);
  });

  it('GET /reservations/{id}/events lists the events of all its products, in commit order', async () => {
    const [a, b] = await products(5, 5);
    const { body: r } = await cart([
      { sku: a!, quantity: 1 },
      { sku: b!, quantity: 1 },
    ]);
    await t.http('POST', `/reservations/${r.id}/cancel`);
    const events = (await t.http('GET', `/reservations/${r.id}/events`)).body.events as { type: string; sku: string }[];
    expect(events.map((e) => [e.type, e.sku])).toEqual([
      ['reserved', a],
      ['reserved', b],
      ['cancelled', a],
      ['cancelled', b],
    ]);
  });

  it('G1 G4 G7: after all of it the database verifies', async () => {
    const report = await verifyDatabase(t.db.url);
    expect(report.violations).toEqual([]);
    expect(await databaseViolations(t.db.sql)).toEqual([]);
  });
});
