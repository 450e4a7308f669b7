import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.ts';
import type { CommandResult, FailureCode } from '../../src/engine/types.ts';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startEngine, type EngineInstance } from '../support/engine.ts';
import { reservationOp } from '../support/reservation-op.ts';

// Two engine instances over one database, without SKU affinity and without the refreshing reads
// the model test makes after every step: each instance keeps whatever view it last had, so the
// other instance's writes make it stale. Whatever it holds, every answer must be a decision or a
// documented refusal (a 2xx or a 4xx at the API), never internal_error or storage_unavailable.
//
// PROPERTY_RUNS sets the number of runs; PROPERTY_SEED and PROPERTY_PATH replay a failing one.

const numRuns = Number(process.env.PROPERTY_RUNS ?? 40);
const seed = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED);
const path = process.env.PROPERTY_PATH;

/** Refusals an API client is documented to get as a 4xx; a rejected outcome is a 409. */
const documented4xx = new Set<FailureCode>(['product_not_found', 'reservation_not_found', 'idempotency_key_reused']);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

type Op =
  | { readonly type: 'reserve'; readonly via: number; readonly sku: number; readonly quantity: number }
  | { readonly type: 'purchase' | 'cancel'; readonly via: number; readonly pick: number }
  | { readonly type: 'adjust'; readonly via: number; readonly sku: number; readonly delta: number }
  | { readonly type: 'read'; readonly via: number; readonly sku: number }
  | { readonly type: 'expire'; readonly via: number; readonly pick: number };

const via = fc.constantFrom(0, 1);
const sku = fc.constantFrom(0, 1);
const pick = fc.nat(40);
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ type: fc.constant('reserve' as const), via, sku, quantity: fc.integer({ min: 1, max: 4 }) }),
  },
  { weight: 3, arbitrary: fc.record({ type: fc.constantFrom('purchase' as const, 'cancel' as const), via, pick }) },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('adjust' as const),
      via,
      sku,
      delta: fc.integer({ min: -6, max: 6 }).filter((d) => d !== 0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('read' as const), via, sku }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('expire' as const), via, pick }) },
);
/** Steps run one after another; a step of two ops runs them at the same moment on both instances. */
const steps = fc.array(
  fc.oneof({ weight: 3, arbitrary: op.map((o) => [o]) }, { weight: 1, arbitrary: fc.tuple(op, op) }),
  { minLength: 1, maxLength: 30 },
);

let runSeq = 0;

async function run(
  instances: EngineInstance[],
  skus: string[],
  reservations: string[],
  o: Op,
  n: number,
): Promise<CommandResult | 'read'> {
  const { registry } = instances[o.via]!;
  const reservationAt = (i: number) => reservations[i % Math.max(reservations.length, 1)] ?? randomUUID();
  switch (o.type) {
    case 'reserve': {
      const result = await registry.execute(skus[o.sku]!, {
        type: 'reserve',
        reservationId: randomUUID(),
        quantity: o.quantity,
        ttlSeconds: 600,
        idempotencyKey: `k-${n}`,
        requestId: `r-${n}`,
      });
      if (result.type === 'done' && result.outcome.kind === 'reservation')
        reservations.push(result.outcome.reservation.id);
      return result;
    }
    case 'purchase':
    case 'cancel':
      return registry.executeReservationOp(
        reservationOp({
          type: o.type,
          reservationId: reservationAt(o.pick),
          idempotencyKey: null,
          requestId: `r-${n}`,
        }),
      );
    case 'expire':
      return registry.executeReservationOp({ type: 'expire', reservationId: reservationAt(o.pick) });
    case 'adjust':
      return registry.execute(skus[o.sku]!, {
        type: 'adjust',
        delta: o.delta,
        reason: 'count',
        idempotencyKey: `k-${n}`,
        requestId: `r-${n}`,
      });
    case 'read':
      await registry.product(skus[o.sku]!);
      return 'read';
  }
}

describe('two instances over one database', () => {
  it('G1 G3 G4: reserve, purchase, cancel, adjust, expire and reads spread over two instances with stale views answer only decisions or documented refusals, and the database verifies', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 12 }), steps, async (stock, plan) => {
        // The audit log is append-only: each run has products of its own.
        const skus = [`TWO-${++runSeq}-A`, `TWO-${runSeq}-B`];
        const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
        const instances = [startEngine(db.url, clock), startEngine(db.url, clock)];
        try {
          for (const s of skus) await instances[0]!.registry.createProduct(s, s, stock, 'setup');
          // Both instances load both products now: from here on each keeps its own view.
          for (const i of instances) for (const s of skus) await i.registry.product(s);
          const reservations: string[] = [];
          let n = 0;
          for (const step of plan) {
            const answers = await Promise.all(step.map((o) => run(instances, skus, reservations, o, n++)));
            for (const answer of answers) {
              if (answer === 'read' || answer.type === 'done') continue;
              expect(documented4xx.has(answer.code), `${answer.code}: ${answer.reason}`).toBe(true);
            }
          }
        } finally {
          await Promise.all(instances.map((i) => i.stop()));
        }
        const report = await verifyDatabase(db.url);
        expect(report.violations).toEqual([]);
      }),
      { numRuns, seed, path, verbose: 1 },
    );
  }, 300_000);
});
