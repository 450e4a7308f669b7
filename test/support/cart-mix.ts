import { expect } from 'vitest';
import { startTestApp } from './app.ts';
import { waitUntil, type TestDatabase } from './database.ts';

/** The carts cartLoad leaves behind, by what happened to them. */
export interface CartIds {
  /** 3 lines (C-A 2, C-B 3, C-C 1), active. */
  readonly active: string;
  /** 2 lines (C-A 1, C-B 1), bought whole. */
  readonly purchased: string;
  /** 3 lines (C-B 2, C-C 2, C-D 1), bought in part: C-B 1 and C-C 2, the rest released. */
  readonly partlyPurchased: string;
  /** 2 lines (C-A 1, C-D 2), cancelled, then refused a purchase. */
  readonly cancelled: string;
  /** 2 lines (C-C 1, C-D 1), extended, active. */
  readonly extended: string;
  /** 2 lines (C-A 1, C-B 1), expired by the sweeper, then refused a purchase. */
  readonly expired: string;
}

export const cartSkus = ['C-A', 'C-B', 'C-C', 'C-D'];

/**
 * Loads carts through HTTP into a fresh database, with every operation a cart has: reserve,
 * purchase whole and in part, cancel, extend, expiry by the sweeper, a refused cart, refusals of
 * finished carts, a replay, and a one-line reservation beside them. The service is stopped before
 * this returns, so only the test writes afterwards.
 */
export async function cartLoad(db: TestDatabase): Promise<CartIds> {
  const t = await startTestApp({ db, env: { SECVENTORY_SWEEP_INTERVAL_MS: '100' } });
  let seq = 0;
  const key = () => `cart-load-${++seq}`;
  const cart = async (lines: [string, number][], ttlSeconds = 600): Promise<string> => {
    const body = { lines: lines.map(([sku, quantity]) => ({ sku, quantity })), ttlSeconds };
    const r = await t.http('POST', '/reservations', { key: key(), body });
    expect(r.status).toBe(201);
    return r.body.id;
  };
  const post = async (path: string, status: number, body?: unknown) => {
    expect((await t.http('POST', path, { key: key(), body })).status).toBe(status);
  };
  try {
    for (const sku of cartSkus) {
      expect((await t.http('POST', '/products', { body: { sku, name: sku, stock: 20 } })).status).toBe(201);
    }
    const carts: CartIds = {
      active: await cart([
        ['C-A', 2],
        ['C-B', 3],
        ['C-C', 1],
      ]),
      purchased: await cart([
        ['C-A', 1],
        ['C-B', 1],
      ]),
      partlyPurchased: await cart([
        ['C-B', 2],
        ['C-C', 2],
        ['C-D', 1],
      ]),
      cancelled: await cart([
        ['C-A', 1],
        ['C-D', 2],
      ]),
      extended: await cart([
        ['C-C', 1],
        ['C-D', 1],
      ]),
      expired: await cart(
        [
          ['C-A', 1],
          ['C-B', 1],
        ],
        1,
      ),
    };
    await post(`/reservations/${carts.purchased}/purchase`, 200);
    const part = {
      lines: [
        { sku: 'C-B', quantity: 1 },
        { sku: 'C-C', quantity: 2 },
      ],
    };
    await post(`/reservations/${carts.partlyPurchased}/purchase`, 200, part);
    await post(`/reservations/${carts.cancelled}/cancel`, 200);
    await post(`/reservations/${carts.cancelled}/cancel`, 200);
    await post(`/reservations/${carts.cancelled}/purchase`, 409);
    await post(`/reservations/${carts.extended}/extend`, 200, { ttlSeconds: 3600 });
    // One short line refuses the whole cart, audited on both products.
    const short = {
      lines: [
        { sku: 'C-A', quantity: 1 },
        { sku: 'C-D', quantity: 1000 },
      ],
    };
    expect((await t.http('POST', '/reservations', { key: key(), body: short })).status).toBe(409);
    const single = await t.http('POST', '/products/C-A/reservations', { key: key(), body: { quantity: 1 } });
    expect(single.status).toBe(201);
    await post(`/reservations/${single.body.id}/purchase`, 200);
    const status = async () => (await t.http('GET', `/reservations/${carts.expired}`)).body.status;
    await waitUntil(async () => (await status()) === 'expired', 5000, 'the sweeper expired the cart');
    await post(`/reservations/${carts.expired}/purchase`, 409);
    return carts;
  } finally {
    await t.close();
  }
}
