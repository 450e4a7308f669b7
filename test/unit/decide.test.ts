import { describe, expect, it } from 'vitest';
import { decide, type DecisionView } from '../../src/engine/decide.ts';
import type { Command, Counters, Reservation, ReservationStatus } from '../../src/engine/types.ts';

const nowMs = Date.parse('2026-06-01T12:00:00Z');
const rid = '11111111-1111-4111-8111-111111111111';

function reservation(status: ReservationStatus, over: Partial<Reservation> = {}): Reservation {
  return {
    id: rid,
    sku: 'S',
    quantity: 3,
    line: 0,
    lines: 1,
    purchasedQuantity: status === 'purchased' ? 3 : null,
    status,
    createdAtMs: nowMs - 1000,
    expiresAtMs: nowMs + 60_000,
    finishedAtMs: status === 'active' ? null : nowMs - 500,
    ...over,
  };
}

function view(counters: Partial<Counters>, r?: Reservation): DecisionView {
  return {
    sku: 'S',
    counters: { total: 10, reserved: 3, purchased: 0, version: 5, ...counters },
    activeReservations: r?.status === 'active' ? 1 : 0,
    reservation: (id) => (r !== undefined && id === r.id ? r : undefined),
  };
}

const reserve = (quantity: number): Command => ({
  type: 'reserve',
  reservationId: '22222222-2222-4222-8222-222222222222',
  quantity,
  ttlSeconds: 60,
  idempotencyKey: 'k',
  requestId: 'req',
});
const purchase: Command = { type: 'purchase', reservationId: rid, idempotencyKey: null, requestId: 'req' };
const cancel: Command = { type: 'cancel', reservationId: rid, idempotencyKey: null, requestId: 'req' };
const expire: Command = { type: 'expire', reservationId: rid };
const adjust = (delta: number): Command => ({
  type: 'adjust',
  delta,
  reason: 'count',
  idempotencyKey: 'k',
  requestId: 'req',
});

describe('decide: reserve', () => {
  it('takes the quantity out of available, inserts an active reservation and one reserved event', () => {
    const d = decide(view({}), reserve(7), nowMs);
    expect(d.counters).toEqual({ total: 10, reserved: 10, purchased: 0, version: 6 });
    expect(d.inserted).toHaveLength(1);
    expect(d.inserted[0]).toMatchObject({ status: 'active', quantity: 7, expiresAtMs: nowMs + 60_000 });
    expect(d.events.map((e) => [e.type, e.seq, e.reserved])).toEqual([['reserved', 6, 10]]);
    expect(d.outcome).toMatchObject({ kind: 'reservation', created: true });
  });

  it('G1: more than available is rejected with insufficient_stock; counters unchanged but for the version', () => {
    const d = decide(view({}), reserve(8), nowMs);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code: 'insufficient_stock' });
    expect(d.counters).toEqual({ total: 10, reserved: 3, purchased: 0, version: 6 });
    expect(d.events).toMatchObject([{ type: 'rejected', code: 'insufficient_stock', quantity: 8 }]);
    expect(d.inserted).toEqual([]);
  });
});

describe('decide: purchase in every state', () => {
  it('active -> purchased moves the quantity from reserved to purchased', () => {
    const d = decide(view({}, reservation('active')), purchase, nowMs);
    expect(d.counters).toEqual({ total: 10, reserved: 0, purchased: 3, version: 6 });
    expect(d.changed).toEqual([
      { id: rid, from: 'active', to: 'purchased', atMs: nowMs, purchasedQuantity: 3, expiresAtMs: null },
    ]);
    expect(d.outcome).toMatchObject({ kind: 'reservation', reservation: { status: 'purchased' } });
  });

  it('purchased -> a replay: same reservation, no event, no change (G2)', () => {
    const d = decide(view({ reserved: 0, purchased: 3 }, reservation('purchased')), purchase, nowMs);
    expect(d.events).toEqual([]);
    expect(d.counters.version).toBe(5);
    expect(d.outcome).toMatchObject({ kind: 'reservation', created: false, reservation: { status: 'purchased' } });
  });

  it.each([
    ['cancelled', 'reservation_cancelled'],
    ['expired', 'reservation_expired'],
  ] as const)('%s -> rejected %s', (status, code) => {
    const d = decide(view({ reserved: 0 }, reservation(status)), purchase, nowMs);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code });
    expect(d.events).toMatchObject([{ type: 'rejected', code, reservationId: rid }]);
    expect(d.changed).toEqual([]);
  });

  it('active but past expiresAt -> expired on the spot, then rejected reservation_expired (two events)', () => {
    const d = decide(view({}, reservation('active', { expiresAtMs: nowMs - 1 })), purchase, nowMs);
    expect(d.events.map((e) => e.type)).toEqual(['expired', 'rejected']);
    expect(d.events[0]).toMatchObject({ lateMs: 1, reserved: 0 });
    expect(d.counters).toEqual({ total: 10, reserved: 0, purchased: 0, version: 7 });
    expect(d.changed).toEqual([
      { id: rid, from: 'active', to: 'expired', atMs: nowMs, purchasedQuantity: null, expiresAtMs: null },
    ]);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code: 'reservation_expired' });
  });
});

describe('decide: cancel in every state', () => {
  it('active -> cancelled returns the quantity to available', () => {
    const d = decide(view({}, reservation('active')), cancel, nowMs);
    expect(d.counters).toEqual({ total: 10, reserved: 0, purchased: 0, version: 6 });
    expect(d.events).toMatchObject([{ type: 'cancelled', quantity: 3 }]);
  });

  it('cancelled -> a replay with no event', () => {
    const d = decide(view({ reserved: 0 }, reservation('cancelled')), cancel, nowMs);
    expect(d.events).toEqual([]);
    expect(d.outcome).toMatchObject({ kind: 'reservation', reservation: { status: 'cancelled' } });
  });

  it.each([
    ['purchased', 'reservation_purchased'],
    ['expired', 'reservation_expired'],
  ] as const)('%s -> rejected %s', (status, code) => {
    const d = decide(view({ reserved: 0 }, reservation(status)), cancel, nowMs);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code });
  });
});

describe('decide: expire in every state', () => {
  it('active and due -> expired, stock released, source sweeper', () => {
    const d = decide(view({}, reservation('active', { expiresAtMs: nowMs - 250 })), expire, nowMs);
    expect(d.events).toMatchObject([{ type: 'expired', source: 'sweeper', lateMs: 250, reserved: 0 }]);
    expect(d.counters.reserved).toBe(0);
  });

  it('active but not yet due -> nothing', () => {
    const d = decide(view({}, reservation('active')), expire, nowMs);
    expect(d.events).toEqual([]);
    expect(d.outcome).toEqual({ kind: 'noop' });
  });

  it.each(['purchased', 'cancelled', 'expired'] as const)('%s -> nothing (whoever finished first wins)', (status) => {
    const d = decide(view({ reserved: 0 }, reservation(status, { expiresAtMs: nowMs - 1 })), expire, nowMs);
    expect(d.events).toEqual([]);
  });
});

describe('decide: adjust', () => {
  it('adds stock', () => {
    const d = decide(view({}), adjust(5), nowMs);
    expect(d.counters.total).toBe(15);
    expect(d.events).toMatchObject([{ type: 'stock_adjusted', delta: 5, reason: 'count', total: 15 }]);
  });

  it('G1: removing below reserved + purchased is rejected insufficient_stock', () => {
    const d = decide(view({}), adjust(-8), nowMs);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code: 'insufficient_stock' });
    expect(d.counters.total).toBe(10);
  });

  it('a total above 2,147,483,647 is rejected stock_limit_exceeded', () => {
    const d = decide(view({ total: 2_147_483_640 }), adjust(10), nowMs);
    expect(d.outcome).toMatchObject({ kind: 'rejected', code: 'stock_limit_exceeded' });
  });
});
