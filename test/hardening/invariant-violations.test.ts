import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.ts';
import { InvariantViolation } from '../../src/engine/errors.ts';
import type { Store } from '../../src/engine/store.ts';
import { sweepAgain } from '../../src/engine/sweeper.ts';
import { sweepBatchSizeMax } from '../../src/engine/limits.ts';
import type { Command } from '../../src/engine/types.ts';
import { resultsOf } from '../../src/persistence/group-commit.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startEngine, type EngineInstance } from '../support/engine.ts';

// What a broken invariant (a programming error) does to a running service: the commands involved
// answer internal_error, nothing of them is applied to memory, the actor reloads from the
// database before its next decision, and the observer hears of it. Never a log line alone.

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** Faults one store call, once, then behaves; `faulted` tells whether it fired. */
function faultOnce<K extends 'loadProduct' | 'commitBatch' | 'commitAllOrNothing'>(
  method: K,
  fault: (real: Store) => Store[K],
) {
  const state = { armed: false, faulted: false };
  const wrap = (real: Store): Store => {
    const faulty = fault(real);
    return new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === method) {
          return (...args: unknown[]) => {
            if (!state.armed) return (target[method] as (...a: unknown[]) => unknown).apply(target, args);
            state.armed = false;
            state.faulted = true;
            return (faulty as (...a: unknown[]) => unknown)(...args);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };
  return { state, wrap };
}

const reserve = (quantity: number): Command => ({
  type: 'reserve',
  reservationId: randomUUID(),
  quantity,
  ttlSeconds: 600,
  idempotencyKey: randomUUID(),
  requestId: 'req',
});

async function withEngine(
  wrapStore: (s: Store) => Store,
  body: (engine: EngineInstance) => Promise<void>,
): Promise<void> {
  const engine = startEngine(db.url, new ManualClock(), { wrapStore });
  try {
    await body(engine);
  } finally {
    const seen = engine.watch.violations.length;
    engine.watch.violations.length = 0;
    await engine.stop();
    expect(seen).toBeGreaterThan(0);
  }
}

describe('a broken invariant', () => {
  it('while loading a product: the command answers internal_error, the observer hears of it, and the next command reloads and succeeds', async () => {
    const fault = faultOnce('loadProduct', (real) => async (sku) => {
      const state = await real.loadProduct(sku);
      return state === null ? null : { ...state, counters: { ...state.counters, reserved: -1 } };
    });
    await withEngine(fault.wrap, async (engine) => {
      await engine.registry.createProduct('INV-LOAD', 'x', 5, 'req');
      engine.registry.passivateIdle();
      fault.state.armed = true;
      const first = await engine.registry.execute('INV-LOAD', reserve(1));
      expect(fault.state.faulted).toBe(true);
      expect(first).toMatchObject({ type: 'failed', code: 'internal_error' });
      expect(engine.watch.violations.map((v) => v.error.message)).toEqual(['G3: reserved >= 0 (adopted)']);
      const second = await engine.registry.execute('INV-LOAD', reserve(2));
      expect(second).toMatchObject({ type: 'done', outcome: { kind: 'reservation' } });
      expect((await engine.registry.product('INV-LOAD'))?.inventory).toMatchObject({ reserved: 2, available: 3 });
    });
  });

  it('after a commit: the batch answers internal_error, memory is dropped, and the next command decides on what was committed', async () => {
    const fault = faultOnce('commitBatch', (real) => async (write) => {
      await real.commitBatch(write);
      throw new TypeError('a bug after the commit');
    });
    await withEngine(fault.wrap, async (engine) => {
      await engine.registry.createProduct('INV-COMMIT', 'x', 5, 'req');
      fault.state.armed = true;
      const first = await engine.registry.execute('INV-COMMIT', reserve(4));
      expect(first).toMatchObject({ type: 'failed', code: 'internal_error' });
      expect(engine.watch.violations.map((v) => v.error.message)).toEqual(['a bug after the commit']);
      // The first reservation did commit: memory that skipped it would let this one oversell.
      const second = await engine.registry.execute('INV-COMMIT', reserve(2));
      expect(second).toMatchObject({ type: 'done', outcome: { kind: 'rejected', code: 'insufficient_stock' } });
    });
  });
});

describe('a broken invariant in a cart', () => {
  it(
    'after its commit: the cart answers internal_error, the observer hears of it, and the next cart decides ' +
      'on what was committed',
    async () => {
      const fault = faultOnce('commitAllOrNothing', (real) => async (writes) => {
        await real.commitAllOrNothing(writes);
        throw new TypeError('a bug after the cart commit');
      });
      const cart = (a: number, b: number) => ({
        type: 'reserve' as const,
        reservationId: randomUUID(),
        ttlSeconds: 600,
        idempotencyKey: randomUUID(),
        requestId: 'req',
        lines: [
          { sku: 'INV-CART-A', quantity: a },
          { sku: 'INV-CART-B', quantity: b },
        ],
      });
      await withEngine(fault.wrap, async (engine) => {
        await engine.registry.createProduct('INV-CART-A', 'x', 5, 'req');
        await engine.registry.createProduct('INV-CART-B', 'x', 5, 'req');
        fault.state.armed = true;
        const first = await engine.registry.executeCart(cart(4, 4));
        expect(fault.state.faulted).toBe(true);
        expect(first).toMatchObject({ type: 'failed', code: 'internal_error' });
        expect(engine.watch.violations.map((v) => v.error.message)).toEqual(['a bug after the cart commit']);
        // The first cart did commit: 1 is left of each product.
        const second = await engine.registry.executeCart(cart(2, 1));
        expect(second).toMatchObject({ type: 'done', outcome: { kind: 'rejected', code: 'insufficient_stock' } });
        const third = await engine.registry.executeCart(cart(1, 1));
        expect(third).toMatchObject({ type: 'done', outcome: { kind: 'reservation', created: true } });
        expect((await engine.registry.product('INV-CART-A'))?.inventory).toMatchObject({ reserved: 5, available: 0 });
      });
    },
  );
});

describe('the group commit reads its results strictly', () => {
  it('one result per batch, in order', () => {
    expect(resultsOf([null, { conflict: true }], 2)).toEqual([{ type: 'committed' }, { type: 'conflict' }]);
  });

  it('a missing result is an invariant violation, never taken as committed', () => {
    expect(() => resultsOf([null], 2)).toThrow(InvariantViolation);
    expect(() => resultsOf(null, 1)).toThrow(InvariantViolation);
  });
});

describe('the sweeper goes round again only when it helps', () => {
  it('after a full round in which something moved', () => {
    expect(sweepAgain(sweepBatchSizeMax, 0)).toBe(true);
    expect(sweepAgain(sweepBatchSizeMax, sweepBatchSizeMax - 1)).toBe(true);
  });

  it('not after a partial round, nor after a round in which every command failed', () => {
    expect(sweepAgain(sweepBatchSizeMax - 1, 0)).toBe(false);
    expect(sweepAgain(sweepBatchSizeMax, sweepBatchSizeMax)).toBe(false);
  });
});
