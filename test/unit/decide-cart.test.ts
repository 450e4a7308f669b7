import { describe, expect, it } from 'vitest';
import type { Base } from '../../src/engine/decide-batch.ts';
import {
  decideCart,
  lineCommands,
  type CartDecision,
  type CartLine,
  type CartOp,
  type CartProduct,
} from '../../src/engine/decide-cart.ts';
import { reservationLifetimeMaxSeconds } from '../../src/engine/limits.ts';
import type { BatchWrite, Counters, Outcome, Reservation, ReservationStatus } from '../../src/engine/types.ts';

// The pure decision of a cart: every product's line decided together, all or nothing.

const nowMs = Date.parse('2026-06-01T12:00:00Z');
const cartId = '11111111-1111-4111-8111-111111111111';
const [a, b, c] = ['SKU-A', 'SKU-B', 'SKU-C'] as const;
const dayMs = reservationLifetimeMaxSeconds * 1000;

/** One product: 10 units, its counters as given, and the lines memory holds active. */
function product(sku: string, counters: Partial<Counters> = {}, active: readonly Reservation[] = []): Base {
  const byId = new Map(active.map((r) => [r.id, r]));
  return {
    sku,
    counters: { total: 10, reserved: 0, purchased: 0, version: 4, ...counters },
    lastHash: sku.toLowerCase().padEnd(64, '0'),
    activeCount: active.length,
    lookup: (id) => byId.get(id),
  };
}

/** A line of the cart `cartId` (of `lines` lines), as memory or the database holds it. */
function line(sku: string, quantity: number, at: number, lines: number, over: Partial<Reservation> = {}): Reservation {
  return {
    id: cartId,
    sku,
    quantity,
    line: at,
    lines,
    purchasedQuantity: null,
    status: 'active',
    createdAtMs: nowMs - 60_000,
    expiresAtMs: nowMs + 60_000,
    finishedAtMs: null,
    ...over,
  };
}

function finished(r: Reservation, status: ReservationStatus, purchasedQuantity: number | null = null): Reservation {
  return { ...r, status, finishedAtMs: nowMs - 1000, purchasedQuantity };
}

/** Decides `op` over products whose active lines memory holds and whose final lines only the database has. */
function decide(op: CartOp, bases: readonly Base[], existing: readonly Reservation[] = []): CartDecision {
  const commands = lineCommands(op, existing);
  if ('type' in commands) return commands;
  const products = new Map<string, CartProduct>(
    bases.map((base) => [
      base.sku,
      {
        base,
        loaded: existing.filter((r) => r.sku === base.sku && base.lookup(r.id) === undefined),
      },
    ]),
  );
  return decideCart(products, commands, nowMs);
}

function decided(d: CartDecision): { writes: readonly BatchWrite[]; outcome: Outcome } {
  if (d.type !== 'decided') throw new Error(`expected a decision, got ${JSON.stringify(d)}`);
  return d;
}

const reserve = (lines: CartLine[], ttlSeconds = 60): CartOp => ({
  type: 'reserve',
  reservationId: cartId,
  lines,
  ttlSeconds,
  idempotencyKey: 'k',
  requestId: 'req',
});
const purchase = (lines: CartLine[] | null): CartOp => ({
  type: 'purchase',
  reservationId: cartId,
  lines,
  idempotencyKey: null,
  requestId: 'req',
});
const extend = (ttlSeconds: number): CartOp => ({
  type: 'extend',
  reservationId: cartId,
  ttlSeconds,
  idempotencyKey: null,
  requestId: 'req',
});

/** Each write's events as [sku, type, code or quantity]. */
const eventsOf = (writes: readonly BatchWrite[]) =>
  writes.flatMap((w) => w.events.map((e) => [w.sku, e.type, e.code ?? e.quantity]));
/** One `rejected` event with `code` on each product, as eventsOf shows it. */
const refusedOn = (code: string, ...skus: string[]) => skus.map((sku) => [sku, 'rejected', code]);

/** The active cart of 3 of A and 2 of B (A listed first), held in memory by both products. */
function activeCart(over: Partial<Reservation> = {}) {
  const lineA = line(a, 3, 0, 2, over);
  const lineB = line(b, 2, 1, 2, over);
  return { lines: [lineA, lineB], bases: [product(a, { reserved: 3 }, [lineA]), product(b, { reserved: 2 }, [lineB])] };
}

describe('decideCart: a new cart', () => {
  it('G1: every line fits: each product reserves its line, and the answer lists the lines in request order', () => {
    const d = decided(
      decide(
        reserve([
          { sku: b, quantity: 2 },
          { sku: a, quantity: 3 },
        ]),
        [product(a), product(b)],
      ),
    );
    expect(eventsOf(d.writes)).toEqual([
      [a, 'reserved', 3],
      [b, 'reserved', 2],
    ]);
    expect(d.writes.map((w) => [w.sku, w.counters.reserved, w.counters.version])).toEqual([
      [a, 3, 5],
      [b, 2, 5],
    ]);
    expect(d.writes.flatMap((w) => w.inserted.map((r) => [r.sku, r.line, r.lines, r.status]))).toEqual([
      [a, 1, 2, 'active'],
      [b, 0, 2, 'active'],
    ]);
    expect(d.outcome).toMatchObject({
      kind: 'reservation',
      created: true,
      reservation: {
        id: cartId,
        status: 'active',
        lines: [
          { sku: b, quantity: 2 },
          { sku: a, quantity: 3 },
        ],
      },
    });
  });

  it('G1 all or nothing: one short line refuses the cart; every product records insufficient_stock', () => {
    const bases = [product(a), product(b, { total: 5, reserved: 4 }), product(c)];
    const lines = [
      { sku: a, quantity: 2 },
      { sku: b, quantity: 2 },
      { sku: c, quantity: 1 },
    ];
    const d = decided(decide(reserve(lines), bases));
    expect(eventsOf(d.writes)).toEqual(refusedOn('insufficient_stock', a, b, c));
    expect(d.writes.flatMap((w) => w.inserted)).toEqual([]);
    // Only the version moves: the refusal is an event on every product, and nothing is reserved.
    const untouched = { total: 10, reserved: 0, purchased: 0, version: 5 };
    const shortB = { total: 5, reserved: 4, purchased: 0, version: 5 };
    expect(d.writes.map((w) => w.counters)).toEqual([untouched, shortB, untouched]);
    expect(d.outcome).toMatchObject({
      kind: 'rejected',
      code: 'insufficient_stock',
      lines: [{ sku: b, requested: 2, available: 1 }],
    });
  });

  it('the refusal lists every short line with what was requested and what its product had available', () => {
    const bases = [product(a, { purchased: 9 }), product(b), product(c, { total: 0 })];
    const lines = [
      { sku: c, quantity: 1 },
      { sku: b, quantity: 1 },
      { sku: a, quantity: 4 },
    ];
    const d = decided(decide(reserve(lines), bases));
    expect(d.outcome).toMatchObject({
      kind: 'rejected',
      code: 'insufficient_stock',
      lines: [
        { sku: a, requested: 4, available: 1 },
        { sku: c, requested: 1, available: 0 },
      ],
    });
  });
});

describe('decideCart: purchase', () => {
  it('a partial purchase writes purchased then released per product, and the counters follow', () => {
    const { lines, bases } = activeCart();
    const d = decided(decide(purchase([{ sku: a, quantity: 1 }]), bases, lines));
    expect(eventsOf(d.writes)).toEqual([
      [a, 'purchased', 1],
      [a, 'released', 2],
      [b, 'released', 2],
    ]);
    expect(d.writes.map((w) => [w.sku, w.counters.reserved, w.counters.purchased, w.counters.version])).toEqual([
      [a, 0, 1, 6],
      [b, 0, 0, 5],
    ]);
    expect(d.writes.flatMap((w) => w.changed.map((x) => [x.id, x.to, x.purchasedQuantity]))).toEqual([
      [cartId, 'purchased', 1],
      [cartId, 'purchased', 0],
    ]);
    expect(d.outcome).toMatchObject({
      kind: 'reservation',
      reservation: {
        status: 'purchased',
        lines: [
          { sku: a, quantity: 3, purchasedQuantity: 1 },
          { sku: b, quantity: 2, purchasedQuantity: 0 },
        ],
      },
    });
  });

  it('a line asking more than it holds refuses the whole purchase on every product, and nothing is bought', () => {
    const { lines, bases } = activeCart();
    const d = decided(
      decide(
        purchase([
          { sku: a, quantity: 1 },
          { sku: b, quantity: 3 },
        ]),
        bases,
        lines,
      ),
    );
    expect(eventsOf(d.writes)).toEqual(refusedOn('quantity_exceeds_reservation', a, b));
    expect(d.writes.flatMap((w) => w.changed)).toEqual([]);
    expect(d.writes.map((w) => [w.sku, w.counters.reserved, w.counters.purchased])).toEqual([
      [a, 3, 0],
      [b, 2, 0],
    ]);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code: 'quantity_exceeds_reservation' });
  });

  it('the same purchase of a purchased cart again writes nothing and answers the purchase again', () => {
    const { lines } = activeCart();
    const bought = [finished(lines[0]!, 'purchased', 3), finished(lines[1]!, 'purchased', 1)];
    const bases = [product(a, { reserved: 0, purchased: 3 }), product(b, { reserved: 0, purchased: 1 })];
    const d = decided(
      decide(
        purchase([
          { sku: a, quantity: 3 },
          { sku: b, quantity: 1 },
        ]),
        bases,
        bought,
      ),
    );
    expect(d.writes).toEqual([]);
    expect(d.outcome).toMatchObject({
      kind: 'reservation',
      created: false,
      reservation: {
        status: 'purchased',
        lines: [
          { sku: a, purchasedQuantity: 3 },
          { sku: b, purchasedQuantity: 1 },
        ],
      },
    });
  });

  it('another purchase of a purchased cart is reservation_purchased on every product', () => {
    const { lines } = activeCart();
    const bought = [finished(lines[0]!, 'purchased', 3), finished(lines[1]!, 'purchased', 1)];
    const bases = [product(a, { reserved: 0, purchased: 3 }), product(b, { reserved: 0, purchased: 1 })];
    const d = decided(decide(purchase(null), bases, bought));
    expect(eventsOf(d.writes)).toEqual(refusedOn('reservation_purchased', a, b));
    expect(d.writes.map((w) => [w.sku, w.counters.reserved, w.counters.purchased])).toEqual([
      [a, 0, 3],
      [b, 0, 1],
    ]);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code: 'reservation_purchased' });
  });

  it('a purchase naming a SKU that is not in the cart is validation_failed before anything is decided', () => {
    const { lines } = activeCart();
    const commands = lineCommands(
      purchase([
        { sku: a, quantity: 1 },
        { sku: c, quantity: 1 },
      ]),
      lines,
    );
    expect(commands).toMatchObject({ type: 'failed', code: 'validation_failed' });
  });
});

describe('decideCart: extend and expire', () => {
  it('an extension past the 24 h lifetime cap is shortened to the cap on every line', () => {
    const { lines, bases } = activeCart();
    const capMs = lines[0]!.createdAtMs + dayMs;
    const d = decided(decide(extend(reservationLifetimeMaxSeconds), bases, lines));
    expect(d.writes.flatMap((w) => w.events.map((e) => [w.sku, e.type, e.expiresAtMs]))).toEqual([
      [a, 'extended', capMs],
      [b, 'extended', capMs],
    ]);
    expect(d.outcome).toMatchObject({
      kind: 'reservation',
      reservation: { status: 'active', expiresAt: new Date(capMs).toISOString() },
    });
  });

  it('a cart already at its 24 h cap is refused reservation_lifetime_exceeded on every product', () => {
    const createdAtMs = nowMs - 60_000;
    const { lines, bases } = activeCart({ createdAtMs, expiresAtMs: createdAtMs + dayMs });
    const d = decided(decide(extend(60), bases, lines));
    expect(eventsOf(d.writes)).toEqual(refusedOn('reservation_lifetime_exceeded', a, b));
    expect(d.writes.flatMap((w) => w.changed)).toEqual([]);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code: 'reservation_lifetime_exceeded' });
  });

  it('G6: an expiry that is not due yet is a noop with no writes', () => {
    const { lines, bases } = activeCart({ expiresAtMs: nowMs + 1 });
    const d = decided(decide({ type: 'expire', reservationId: cartId }, bases, lines));
    expect(d).toMatchObject({ type: 'decided', writes: [], outcome: { kind: 'noop' } });
  });

  it('G6: a due expiry expires every line and returns its stock', () => {
    const { lines, bases } = activeCart({ expiresAtMs: nowMs });
    const d = decided(decide({ type: 'expire', reservationId: cartId }, bases, lines));
    expect(eventsOf(d.writes)).toEqual([
      [a, 'expired', 3],
      [b, 'expired', 2],
    ]);
    expect(d.writes.map((w) => w.counters.reserved)).toEqual([0, 0]);
    expect(d.outcome).toMatchObject({ kind: 'reservation', reservation: { status: 'expired' } });
  });
});

describe('decideCart: a stale product', () => {
  it('G1 G3: an active line only the database knows makes the decision stale, naming its product', () => {
    const { lines } = activeCart();
    // B's memory predates the cart: its counters do not count the line the database holds.
    const bases = [product(a, { reserved: 3 }, [lines[0]!]), product(b)];
    expect(decide(purchase(null), bases, lines)).toEqual({ type: 'stale', sku: b });
  });
});
