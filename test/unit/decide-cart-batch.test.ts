import { describe, expect, it } from 'vitest';
import type { Base } from '../../src/engine/decide-batch.ts';
import { decideCartBatch, type CartToDecide } from '../../src/engine/decide-cart-batch.ts';
import type { CartLine, CartOp } from '../../src/engine/decide-cart.ts';
import { eventHash } from '../../src/engine/event-hash.ts';
import type { BatchWrite, Counters, Reservation } from '../../src/engine/types.ts';

// The cart lane's decision of a batch of carts: one after another on the evolving state, each all
// or nothing on its own, and one write per product for the whole batch.

const nowMs = Date.parse('2026-06-01T12:00:00Z');
const id = (n: number) => `22222222-2222-4222-8222-${String(n).padStart(12, '0')}`;

function product(sku: string, counters: Partial<Counters> = {}, active: readonly Reservation[] = []): Base {
  const byId = new Map(active.map((r) => [r.id, r]));
  return {
    sku,
    counters: { total: 10, reserved: 0, purchased: 0, version: 3, ...counters },
    lastHash: `${sku}-head`,
    activeCount: active.length,
    lookup: (rid) => byId.get(rid),
  };
}

const bases = (...all: Base[]) => new Map<string, Base | null>(all.map((b) => [b.sku, b]));

function reserve(n: number, lines: CartLine[]): CartToDecide {
  const op: CartOp = {
    type: 'reserve',
    reservationId: id(n),
    lines,
    ttlSeconds: 60,
    idempotencyKey: `k${n}`,
    requestId: `r${n}`,
  };
  return { op, skus: lines.map((l) => l.sku).sort(), existing: [], key: null };
}

const writeOf = (writes: readonly BatchWrite[], sku: string) => writes.find((w) => w.sku === sku)!;
const eventsOf = (w: BatchWrite) => w.events.map((e) => [e.type, e.reservationId ?? e.code]);

describe('decideCartBatch', () => {
  it('G1 all or nothing: a refused cart in a batch leaves only its rejections, and the carts after it are decided as if it had not asked', () => {
    const d = decideCartBatch(
      bases(product('A', { total: 2 }), product('B', { total: 1 }), product('C')),
      [
        reserve(1, [
          { sku: 'A', quantity: 1 },
          { sku: 'B', quantity: 1 },
        ]),
        // B has nothing left: this cart is refused whole, on A too.
        reserve(2, [
          { sku: 'A', quantity: 1 },
          { sku: 'B', quantity: 1 },
        ]),
        // The unit of A that the refused cart would have taken is still there.
        reserve(3, [
          { sku: 'A', quantity: 1 },
          { sku: 'C', quantity: 1 },
        ]),
      ],
      nowMs,
    );
    if (d.type !== 'decided') throw new Error('stale');
    expect(d.results.map((r) => (r.type === 'done' ? r.outcome.kind : r.code))).toEqual([
      'reservation',
      'rejected',
      'reservation',
    ]);
    expect(d.results[1]).toMatchObject({
      outcome: { code: 'insufficient_stock', lines: [{ sku: 'B', available: 0 }] },
    });
    expect(d.writes.map((w) => w.sku)).toEqual(['A', 'B', 'C']);
    const a = writeOf(d.writes, 'A');
    expect(eventsOf(a)).toEqual([
      ['reserved', id(1)],
      ['rejected', 'insufficient_stock'],
      ['reserved', id(3)],
    ]);
    expect(eventsOf(writeOf(d.writes, 'B'))).toEqual([
      ['reserved', id(1)],
      ['rejected', 'insufficient_stock'],
    ]);
    expect(d.writes.flatMap((w) => w.inserted.map((r) => r.id))).not.toContain(id(2));
    expect(a).toMatchObject({ versionBefore: 3, hashBefore: 'A-head', counters: { reserved: 2, version: 6 } });
  });

  it('G7: one product written by several carts of a batch gets one chain: each event hashes onto the one before it', () => {
    const lines = (n: number): CartLine[] => [
      { sku: 'A', quantity: n },
      { sku: 'B', quantity: 1 },
    ];
    const d = decideCartBatch(bases(product('A'), product('B')), [reserve(1, lines(1)), reserve(2, lines(2))], nowMs);
    if (d.type !== 'decided') throw new Error('stale');
    const a = writeOf(d.writes, 'A');
    let head = a.hashBefore;
    for (const e of a.events) {
      expect(e.hash).toBe(eventHash(head, 'A', e));
      head = e.hash;
    }
    expect(a.events.map((e) => e.seq)).toEqual([4, 5]);
  });

  it('a cart naming a product that does not exist fails alone, naming it; the others of the batch go on', () => {
    const d = decideCartBatch(
      new Map([...bases(product('A'), product('B')), ['NONE', null]]),
      [
        reserve(1, [
          { sku: 'A', quantity: 1 },
          { sku: 'NONE', quantity: 1 },
        ]),
        reserve(2, [
          { sku: 'A', quantity: 1 },
          { sku: 'B', quantity: 1 },
        ]),
      ],
      nowMs,
    );
    if (d.type !== 'decided') throw new Error('stale');
    expect(d.results[0]).toMatchObject({ type: 'failed', code: 'product_not_found', unknownSkus: ['NONE'] });
    expect(d.results[1]).toMatchObject({ type: 'done', outcome: { kind: 'reservation', created: true } });
    expect(eventsOf(writeOf(d.writes, 'A'))).toEqual([['reserved', id(2)]]);
  });
});
