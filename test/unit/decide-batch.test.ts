import { describe, expect, it } from 'vitest';
import {
  decideBatch,
  reservationsToLoad,
  type Base,
  type BatchCommand,
  type BatchDecision,
} from '../../src/engine/decide-batch.ts';
import { eventHash } from '../../src/engine/event-hash.ts';
import { fingerprintOf } from '../../src/engine/fingerprint.ts';
import type { Command, Counters, IdempotencyRecord, Reservation, ReservationStatus } from '../../src/engine/types.ts';

const sku = 'S';
const nowMs = Date.parse('2026-06-01T12:00:00Z');
const headHash = 'a'.repeat(64);
const held = '11111111-1111-4111-8111-111111111111';
const fresh = '22222222-2222-4222-8222-222222222222';
const other = '33333333-3333-4333-8333-333333333333';
const unknown = '44444444-4444-4444-8444-444444444444';

function reservation(id: string, status: ReservationStatus, quantity = 3): Reservation {
  return {
    id,
    sku,
    quantity,
    status,
    createdAtMs: nowMs - 1000,
    expiresAtMs: nowMs + 60_000,
    finishedAtMs: status === 'active' ? null : nowMs - 500,
    line: 0,
    lines: 1,
    purchasedQuantity: status === 'purchased' ? quantity : null,
  };
}

/** A product with 10 units, 3 of them held by one active reservation memory knows. */
function base(over: Partial<Counters> = {}): Base {
  const active = reservation(held, 'active');
  return {
    sku,
    counters: { total: 10, reserved: 3, purchased: 0, version: 5, ...over },
    lastHash: headHash,
    activeCount: 1,
    lookup: (id) => (id === held ? active : undefined),
  };
}

const reserve = (key: string, quantity: number, reservationId = fresh): Command => ({
  type: 'reserve',
  reservationId,
  quantity,
  ttlSeconds: 60,
  idempotencyKey: key,
  requestId: 'req',
});
const purchase = (reservationId: string, key: string | null = null): Command => ({
  type: 'purchase',
  reservationId,
  idempotencyKey: key,
  requestId: 'req',
});
const cancel = (reservationId: string, key: string | null = null): Command => ({
  type: 'cancel',
  reservationId,
  idempotencyKey: key,
  requestId: 'req',
});
const adjust = (key: string, delta: number): Command => ({
  type: 'adjust',
  delta,
  reason: 'count',
  idempotencyKey: key,
  requestId: 'req',
});

const batchOf = (...commands: Command[]): BatchCommand[] =>
  commands.map((command) => ({ command, fingerprint: fingerprintOf(command) }));

function decided(
  batch: readonly BatchCommand[],
  options: { base?: Base; loaded?: Reservation[]; known?: IdempotencyRecord[] } = {},
): BatchDecision {
  const known = new Map((options.known ?? []).map((r) => [r.key, r]));
  const outcome = decideBatch(options.base ?? base(), batch, options.loaded ?? [], nowMs, known);
  if (outcome.type !== 'decided') throw new Error(`expected a decision, got ${outcome.type}`);
  return outcome.decision;
}

describe('decideBatch: idempotency within a batch and from the database', () => {
  it('G2: a duplicate key inside one batch replays the first outcome and writes once', () => {
    const d = decided(batchOf(reserve('k', 2), reserve('k', 2, other)));
    const first = d.results[0]!;
    expect(first).toMatchObject({ type: 'done', replayed: false, outcome: { kind: 'reservation', created: true } });
    const outcome = first.type === 'done' ? first.outcome : null;
    expect(d.results[1]).toEqual({ type: 'done', replayed: true, outcome });
    expect(d.write!.events.map((e) => e.type)).toEqual(['reserved']);
    expect(d.write!.inserted.map((r) => r.id)).toEqual([fresh]);
    expect(d.write!.idempotency).toEqual([{ key: 'k', fingerprint: 'reserve:2:60', outcome }]);
    expect(d.after.counters.reserved).toBe(5);
  });

  it('the same key with another payload in one batch is idempotency_key_reused and writes nothing for it', () => {
    const d = decided(batchOf(reserve('k', 2), reserve('k', 4, other)));
    expect(d.results[1]).toMatchObject({ type: 'failed', code: 'idempotency_key_reused' });
    expect(d.write!.events).toHaveLength(1);
    expect(d.write!.inserted.map((r) => r.id)).toEqual([fresh]);
    expect(d.write!.idempotency.map((r) => r.fingerprint)).toEqual(['reserve:2:60']);
    expect(d.reservations.has(other)).toBe(false);
  });

  it('a key the database already holds replays the stored outcome and a batch of only replays writes nothing', () => {
    const stored: IdempotencyRecord = { key: 'k', fingerprint: 'adjust:5:"count"', outcome: { kind: 'noop' } };
    const d = decided(batchOf(adjust('k', 5)), { known: [stored] });
    expect(d.results).toEqual([{ type: 'done', outcome: { kind: 'noop' }, replayed: true }]);
    expect(d.write).toBeNull();
    expect(d.after.counters).toEqual(base().counters);
    expect(d.after.lastHash).toBe(headHash);
    expect(d.reservations.size).toBe(0);
  });

  it('a key the database holds for another payload is idempotency_key_reused, with nothing to write', () => {
    const stored: IdempotencyRecord = { key: 'k', fingerprint: 'adjust:7:"count"', outcome: { kind: 'noop' } };
    const d = decided(batchOf(adjust('k', 5)), { known: [stored] });
    expect(d.results).toMatchObject([{ type: 'failed', code: 'idempotency_key_reused' }]);
    expect(d.write).toBeNull();
  });
});

describe('decideBatch: which reservation a command names', () => {
  it('a reservation neither memory nor the database knows is reservation_not_found, with no event', () => {
    const d = decided(batchOf(purchase(unknown, 'k')));
    expect(d.results).toMatchObject([{ type: 'failed', code: 'reservation_not_found' }]);
    expect(d.write).toBeNull();
  });

  it('a reservation reserved earlier in the same batch can be purchased by a later command', () => {
    const d = decided(batchOf(reserve('k', 2), purchase(fresh)));
    expect(d.results[1]).toMatchObject({
      type: 'done',
      outcome: { kind: 'reservation', reservation: { id: fresh, status: 'purchased' } },
    });
    expect(d.write!.events.map((e) => e.type)).toEqual(['reserved', 'purchased']);
    expect(d.after.counters).toMatchObject({ reserved: 3, purchased: 2 });
  });

  it('G1 G3: an active reservation loaded from the database makes the batch stale, naming it', () => {
    const outcome = decideBatch(base(), batchOf(purchase(other)), [reservation(other, 'active')], nowMs, new Map());
    expect(outcome).toEqual({ type: 'stale', reservationId: other });
  });

  it('a final reservation loaded from the database is decided: purchasing a cancelled one is rejected', () => {
    const d = decided(batchOf(purchase(other)), { loaded: [reservation(other, 'cancelled')] });
    expect(d.results).toMatchObject([
      { type: 'done', replayed: false, outcome: { kind: 'rejected', code: 'reservation_cancelled' } },
    ]);
    expect(d.write!.events).toMatchObject([
      { type: 'rejected', code: 'reservation_cancelled', reservationId: other, seq: 6 },
    ]);
    expect(d.write!.changed).toEqual([]);
    expect(d.after.counters).toEqual({ total: 10, reserved: 3, purchased: 0, version: 6 });
  });

  it('reservationsToLoad names each reservation memory does not know once, and never a reserve or adjust', () => {
    const batch = batchOf(purchase(held), cancel(other), purchase(other), reserve('k', 1, unknown), adjust('a', 1));
    expect(reservationsToLoad(base(), batch)).toEqual([other]);
  });
});

describe('decideBatch: the write and the state after', () => {
  it('G7: events chain onto base.lastHash with consecutive seqs from version + 1, guarded by the base', () => {
    const d = decided(batchOf(adjust('a', 4), reserve('k', 2), cancel(held)));
    const w = d.write!;
    expect(w.versionBefore).toBe(5);
    expect(w.hashBefore).toBe(headHash);
    expect(w.events.map((e) => e.seq)).toEqual([6, 7, 8]);
    let previous = headHash;
    for (const e of w.events) {
      expect(e.sku).toBe(sku);
      expect(e.hash).toBe(eventHash(previous, sku, e));
      previous = e.hash;
    }
    expect(w.counters.version).toBe(8);
  });

  it('after carries the new counters, chain head and active count; reservations lists those changed', () => {
    const d = decided(batchOf(reserve('k', 2), cancel(held)));
    expect(d.after.counters).toEqual({ total: 10, reserved: 2, purchased: 0, version: 7 });
    expect(d.after.lastHash).toBe(d.write!.events.at(-1)!.hash);
    expect(d.after.activeCount).toBe(1);
    expect([...d.reservations.values()].map((r) => [r.id, r.status])).toEqual([
      [fresh, 'active'],
      [held, 'cancelled'],
    ]);
    expect(d.write!.changed).toEqual([
      { id: held, from: 'active', to: 'cancelled', atMs: nowMs, purchasedQuantity: null, expiresAtMs: null },
    ]);
    expect(d.write!.atMs).toBe(nowMs);
  });

  it('G4: commands of one batch that change one reservation write one change of its row, to where the last leaves it', () => {
    const extend = (ttlSeconds: number): Command => ({
      type: 'extend',
      reservationId: held,
      ttlSeconds,
      idempotencyKey: null,
      requestId: 'req',
    });
    const d = decided(batchOf(extend(120), extend(300), purchase(held)));
    expect(d.write!.events.map((e) => e.type)).toEqual(['extended', 'extended', 'purchased']);
    // The commit updates the row once, from the status it has: one change, keeping the last expiry.
    expect(d.write!.changed).toEqual([
      { id: held, from: 'active', to: 'purchased', atMs: nowMs, purchasedQuantity: 3, expiresAtMs: nowMs + 300_000 },
    ]);
  });

  it('G1: a rejection for insufficient stock is itself an event: the version moves, the stock does not', () => {
    const d = decided(batchOf(reserve('k', 8)));
    expect(d.results).toMatchObject([{ type: 'done', outcome: { kind: 'rejected', code: 'insufficient_stock' } }]);
    expect(d.write!.events).toMatchObject([{ type: 'rejected', code: 'insufficient_stock', seq: 6 }]);
    expect(d.write!.inserted).toEqual([]);
    expect(d.write!.idempotency).toMatchObject([{ key: 'k', outcome: { kind: 'rejected' } }]);
    expect(d.after.counters).toEqual({ total: 10, reserved: 3, purchased: 0, version: 6 });
  });

  it('G2: a keyed replay by the lifecycle writes its key but no event, leaving the chain head where it was', () => {
    const d = decided(batchOf(cancel(other, 'c')), { loaded: [reservation(other, 'cancelled')] });
    expect(d.results).toMatchObject([
      { type: 'done', replayed: false, outcome: { kind: 'reservation', reservation: { status: 'cancelled' } } },
    ]);
    expect(d.write!.events).toEqual([]);
    expect(d.write!.idempotency.map((r) => r.key)).toEqual(['c']);
    expect(d.write!.counters).toEqual(base().counters);
    expect(d.after.lastHash).toBe(headHash);
  });

  it('a batch that only replays by the lifecycle, without keys, writes nothing', () => {
    const d = decided(batchOf(cancel(other)), { loaded: [reservation(other, 'cancelled')] });
    expect(d.results).toMatchObject([{ type: 'done', outcome: { kind: 'reservation' } }]);
    expect(d.write).toBeNull();
  });

  it('results come one per command, in the batch order', () => {
    const d = decided(batchOf(purchase(unknown), adjust('a', 1), reserve('k', 1), adjust('a', 2)));
    expect(d.results.map((r) => (r.type === 'done' ? r.outcome.kind : r.code))).toEqual([
      'reservation_not_found',
      'inventory',
      'reservation',
      'idempotency_key_reused',
    ]);
  });
});
