import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import type { Base } from '../../src/engine/decide-batch.ts';
import { decideCartBatch, type CartToDecide } from '../../src/engine/decide-cart-batch.ts';
import { cartFingerprintOf, type CartLine, type CartOp } from '../../src/engine/decide-cart.ts';
import { scopeOf } from '../../src/engine/cart.ts';
import type { BatchWrite, CommandResult, Counters, Reservation } from '../../src/engine/types.ts';

// The cart lane decides a batch of carts together and commits one write per product. Deciding
// them together must be exactly deciding them one by one, in order, each committed before the
// next is decided: the same answer to every cart, and the same products and reservations after.
// Pure: no database, so many runs. PROPERTY_RUNS scales them with the other property files.

const numRuns = process.env.PROPERTY_RUNS === undefined ? 300 : Number(process.env.PROPERTY_RUNS) * 8;
const params = { numRuns };

const skus = ['P-A', 'P-B', 'P-C'] as const;
/** Named by some carts, but no such product exists. */
const missingSku = 'P-Z';
const startMs = Date.parse('2026-05-01T10:00:00Z');
const uuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

// ---------------------------------------------------------------------------------------------
// A reference "database": each product as committed, and every line it ever had

interface Product {
  counters: Counters;
  lastHash: string;
  /** Every line of this product by reservation id, in whatever status. */
  readonly lines: Map<string, Reservation>;
}

type World = Map<string, Product>;

function worldOf(stocks: readonly number[]): World {
  return new Map(
    skus.map((sku, i) => [
      sku,
      {
        counters: { total: stocks[i]!, reserved: 0, purchased: 0, version: 1 },
        lastHash: `${sku.toLowerCase()}-genesis`,
        lines: new Map(),
      },
    ]),
  );
}

/** What an actor decides on: the committed state, knowing its active lines. */
function basesOf(world: World): Map<string, Base | null> {
  const bases = new Map<string, Base | null>([[missingSku, null]]);
  for (const [sku, p] of world) {
    const active = [...p.lines.values()].filter((r) => r.status === 'active');
    const byId = new Map(active.map((r) => [r.id, r]));
    bases.set(sku, {
      sku,
      counters: p.counters,
      lastHash: p.lastHash,
      activeCount: active.length,
      lookup: (id) => byId.get(id),
    });
  }
  return bases;
}

/** Commits writes as the commit function does, guarded by version and chain head. */
function commit(world: World, writes: readonly BatchWrite[]): void {
  for (const w of writes) {
    const p = world.get(w.sku)!;
    expect([w.versionBefore, w.hashBefore], `the guard of ${w.sku}`).toEqual([p.counters.version, p.lastHash]);
    p.counters = w.counters;
    p.lastHash = w.events.at(-1)?.hash ?? p.lastHash;
    for (const r of w.inserted) p.lines.set(r.id, r);
    for (const c of w.changed) {
      const r = p.lines.get(c.id)!;
      expect(r.status, `line ${c.id} of ${w.sku} is changed from the status it has`).toBe(c.from);
      p.lines.set(c.id, {
        ...r,
        status: c.to,
        finishedAtMs: c.to === 'active' ? null : c.atMs,
        purchasedQuantity: c.purchasedQuantity,
        expiresAtMs: c.expiresAtMs ?? r.expiresAtMs,
      });
    }
  }
}

/** The lines of a reservation as the database holds them, in line order. */
function linesOf(world: World, id: string): Reservation[] {
  return [...world.values()]
    .flatMap((p) => [...p.lines.values()].filter((r) => r.id === id))
    .sort((a, b) => a.line - b.line);
}

// ---------------------------------------------------------------------------------------------
// Operations

/** An operation as generated: on a new cart, or on one of the carts made before the batch. */
type Planned =
  | {
      readonly kind: 'reserve';
      readonly lines: readonly CartLine[];
      readonly ttlSeconds: number;
      readonly keyed: boolean;
    }
  | {
      readonly kind: 'purchase' | 'cancel' | 'extend' | 'expire';
      readonly pick: number;
      readonly part: boolean;
      readonly ttlSeconds: number;
      readonly keyed: boolean;
    };

const cartLines = fc
  .uniqueArray(
    fc.record({ sku: fc.constantFrom<string>(...skus, ...skus, missingSku), quantity: fc.integer({ min: 1, max: 3 }) }),
    { minLength: 2, maxLength: 3, selector: (l) => l.sku },
  )
  .map((lines) => lines as CartLine[]);
const reserveArb: fc.Arbitrary<Planned> = fc.record({
  kind: fc.constant('reserve' as const),
  lines: cartLines,
  ttlSeconds: fc.integer({ min: 1, max: 120 }),
  keyed: fc.boolean(),
});
const operateArb: fc.Arbitrary<Planned> = fc.record({
  kind: fc.constantFrom('purchase' as const, 'cancel' as const, 'extend' as const, 'expire' as const),
  pick: fc.nat(7),
  part: fc.boolean(),
  ttlSeconds: fc.integer({ min: 1, max: 600 }),
  keyed: fc.boolean(),
});
const caseArb = fc.record({
  stocks: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 3, maxLength: 3 }),
  /** Carts made (or refused) one by one before the batch. */
  before: fc.array(reserveArb, { minLength: 0, maxLength: 4 }),
  /** Seconds between the carts made before and the batch: some of them are due by then. */
  laterSeconds: fc.integer({ min: 0, max: 150 }),
  batch: fc.array(fc.oneof({ weight: 3, arbitrary: reserveArb }, { weight: 2, arbitrary: operateArb }), {
    minLength: 1,
    maxLength: 8,
  }),
});

let seq = 0;

/** The operation, or null when it names a cart that was not made (the registry refuses those). */
function opOf(planned: Planned, made: readonly string[]): CartOp | null {
  const n = ++seq;
  const idempotencyKey = planned.keyed ? `key-${n}` : null;
  const requestId = `req-${n}`;
  if (planned.kind === 'reserve') {
    const { lines, ttlSeconds } = planned;
    return { type: 'reserve', reservationId: uuid(n), lines, ttlSeconds, idempotencyKey: `key-${n}`, requestId };
  }
  const reservationId = made[planned.pick % Math.max(made.length, 1)];
  if (reservationId === undefined) return null;
  switch (planned.kind) {
    case 'purchase':
      // A partial purchase buys one unit of the first line only; the others return to available.
      return {
        type: 'purchase',
        reservationId,
        lines: planned.part ? partOf(reservationId) : null,
        idempotencyKey,
        requestId,
      };
    case 'cancel':
      return { type: 'cancel', reservationId, idempotencyKey, requestId };
    case 'extend':
      return { type: 'extend', reservationId, ttlSeconds: planned.ttlSeconds, idempotencyKey, requestId };
    case 'expire':
      return { type: 'expire', reservationId };
  }
}

const firstLines = new Map<string, CartLine>();
const partOf = (id: string): CartLine[] => [{ ...firstLines.get(id)!, quantity: 1 }];

/** A cart as the lane hands it over; `existing` as the database (or memory) holds it now. */
function toDecide(op: CartOp, world: World): CartToDecide {
  const existing = op.type === 'reserve' ? [] : linesOf(world, op.reservationId);
  const opSkus = (op.type === 'reserve' ? op.lines.map((l) => l.sku) : existing.map((r) => r.sku)).sort();
  const idempotencyKey = op.type === 'expire' ? null : op.idempotencyKey;
  const key =
    idempotencyKey === null ? null : { scope: scopeOf(op), key: idempotencyKey, fingerprint: cartFingerprintOf(op) };
  return { op, skus: opSkus, existing, key };
}

/** Decides and commits each cart alone, in order: the reference. */
function oneByOne(world: World, ops: readonly CartOp[], nowMs: number) {
  const results: CommandResult[] = [];
  for (const op of ops) {
    const d = decideCartBatch(basesOf(world), [toDecide(op, world)], nowMs);
    if (d.type !== 'decided') throw new Error(`one cart alone was stale: ${d.sku}`);
    results.push(d.results[0]!);
    commit(world, d.writes);
  }
  return results;
}

/** The carts made (or refused) before the batch, each decided and committed alone. */
function plannedBefore(before: readonly Planned[]): CartOp[] {
  return before.map((planned) => opOf(planned, [])!);
}

/** The world after the carts before the batch, and the ids of those that were made. */
function setUp(stocks: readonly number[], before: readonly CartOp[]) {
  const world = worldOf(stocks);
  const made: string[] = [];
  for (const op of before) {
    const [result] = oneByOne(world, [op], startMs);
    if (op.type === 'reserve' && result!.type === 'done' && result!.outcome.kind === 'reservation') {
      made.push(op.reservationId);
      firstLines.set(op.reservationId, op.lines[0]!);
    }
  }
  return { world, made };
}

/** Everything a product's row, chain and lines say: what two worlds are compared by. */
function snapshot(world: World) {
  return [...world].map(([sku, p]) => ({ sku, counters: p.counters, lastHash: p.lastHash, lines: [...p.lines] }));
}

describe('decideCartBatch', () => {
  test.prop([caseArb], params)(
    'G1 G4: a batch of carts decided together answers and writes exactly what deciding and committing them one by one in order does',
    ({ stocks, before, laterSeconds, batch }) => {
      const nowMs = startMs + laterSeconds * 1000;
      const made = plannedBefore(before);
      const together = setUp(stocks, made);
      const alone = setUp(stocks, made);
      const ops = batch.flatMap((p) => opOf(p, together.made) ?? []);
      if (ops.length === 0) return;

      const expected = oneByOne(alone.world, ops, nowMs);
      const d = decideCartBatch(
        basesOf(together.world),
        ops.map((op) => toDecide(op, together.world)),
        nowMs,
      );
      if (d.type !== 'decided') throw new Error(`the batch was stale: ${d.sku}`);
      expect(d.results).toEqual(expected);
      expect(d.writes.map((w) => w.sku)).toEqual([...new Set(d.writes.map((w) => w.sku))].sort());
      commit(together.world, d.writes);
      expect(snapshot(together.world)).toEqual(snapshot(alone.world));
    },
  );
});
