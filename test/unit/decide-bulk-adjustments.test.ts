import { describe, expect, it } from 'vitest';
import type { Base } from '../../src/engine/decide-batch.ts';
import { decideBulkAdjustments } from '../../src/engine/decide-bulk-adjustments.ts';
import type { Counters } from '../../src/engine/types.ts';

// The pure decision of an atomic bulk adjustment: every item decided on its own product, then all
// applied or, if one is refused, a refusal recorded on every product and no total changed.

const nowMs = Date.parse('2026-06-01T12:00:00Z');
const [a, b, c] = ['SKU-A', 'SKU-B', 'SKU-C'] as const;

/** One product: 10 units in total, its counters as given, at version 4. */
function product(sku: string, counters: Partial<Counters> = {}): Base {
  return {
    sku,
    counters: { total: 10, reserved: 0, purchased: 0, version: 4, ...counters },
    lastHash: sku.toLowerCase().padEnd(64, '0'),
    activeCount: 0,
    lookup: () => undefined,
  };
}

const bases = (...products: Base[]) => new Map(products.map((p) => [p.sku, p]));

describe('decideBulkAdjustments', () => {
  it('every item allowed: one stock_adjusted event per product, the results in the order of the request', () => {
    const d = decideBulkAdjustments(
      bases(product(a), product(b)),
      [
        { sku: b, delta: -3, reason: 'count' },
        { sku: a, delta: 5, reason: 'delivery' },
      ],
      'req-1',
      nowMs,
    );
    expect(d.writes.map((w) => [w.sku, w.counters.total, w.events.map((e) => e.type)])).toEqual([
      [b, 7, ['stock_adjusted']],
      [a, 15, ['stock_adjusted']],
    ]);
    expect(d.outcome).toEqual({
      kind: 'bulk',
      items: [
        { type: 'inventory', inventory: expect.objectContaining({ sku: b, total: 7, version: 5 }) },
        { type: 'inventory', inventory: expect.objectContaining({ sku: a, total: 15, version: 5 }) },
      ],
    });
    // The call's key is not the items': their events carry none.
    expect(d.writes.flatMap((w) => w.events.map((e) => e.idempotencyKey))).toEqual([null, null]);
  });

  it('G4: one item refused refuses them all: a rejected event on every product, no total changed', () => {
    const d = decideBulkAdjustments(
      bases(product(a), product(b, { reserved: 9 }), product(c, { total: 2_147_483_000 })),
      [
        { sku: a, delta: 5, reason: 'recount' },
        { sku: b, delta: -2, reason: 'recount' },
        { sku: c, delta: 1000, reason: 'recount' },
      ],
      'req-2',
      nowMs,
    );
    expect(d.writes.map((w) => [w.sku, w.counters.total, w.counters.version])).toEqual([
      [a, 10, 5],
      [b, 10, 5],
      [c, 2_147_483_000, 5],
    ]);
    expect(d.writes.map((w) => w.events.map((e) => [e.type, e.code, e.delta, e.reason]))).toEqual([
      [['rejected', 'insufficient_stock', 5, 'recount']],
      [['rejected', 'insufficient_stock', -2, 'recount']],
      [['rejected', 'stock_limit_exceeded', 1000, 'recount']],
    ]);
    expect(d.outcome).toMatchObject({
      kind: 'rejected',
      code: 'insufficient_stock',
      items: [
        { sku: b, code: 'insufficient_stock' },
        { sku: c, code: 'stock_limit_exceeded' },
      ],
    });
    expect(d.results.map((r) => r.type === 'done' && r.outcome.kind)).toEqual(['rejected', 'rejected', 'rejected']);
  });

  it('the call is refused with the code of its first refused item, in the order of the request', () => {
    const d = decideBulkAdjustments(
      bases(product(a, { total: 2_147_483_000 }), product(b, { reserved: 10 })),
      [
        { sku: a, delta: 1000, reason: 'x' },
        { sku: b, delta: -1, reason: 'x' },
      ],
      'req-3',
      nowMs,
    );
    expect(d.outcome).toMatchObject({ kind: 'rejected', code: 'stock_limit_exceeded' });
  });
});
