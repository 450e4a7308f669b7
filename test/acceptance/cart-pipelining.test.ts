import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { systemClock } from '../../src/engine/clock.ts';
import type { CartLine } from '../../src/engine/decide-cart.ts';
import type { CommitResult, Store } from '../../src/engine/store.ts';
import type { BatchWrite, CommandResult } from '../../src/engine/types.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';
import { startEngine, type EngineInstance } from '../support/engine.ts';

// The cart lane with two batches in flight (cartBatchesInFlightMax 2): while one batch of carts
// commits, the next is decided on top of it and sent once it returns. These tests hold the carts'
// commits back to look at what is in flight, and move a product underneath to show that a batch
// decided on top of one that did not commit never commits on a state that did not exist.

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** A store whose all-or-nothing commits can be held at the door; every one it sees is recorded. */
class GatedStore {
  readonly commits: { writes: readonly BatchWrite[]; result?: CommitResult; settledAtMs?: number }[] = [];
  private held: (() => void)[] = [];
  holding = false;

  constructor(private readonly inner: Store) {}

  wrap(): Store {
    return new Proxy(this.inner, {
      get: (target, name, receiver) => {
        if (name !== 'commitAllOrNothing') return Reflect.get(target, name, receiver);
        return async (writes: readonly BatchWrite[], after?: Promise<unknown>) => {
          const record: (typeof this.commits)[number] = { writes };
          this.commits.push(record);
          if (this.holding) await new Promise<void>((release) => this.held.push(release));
          const result = await target.commitAllOrNothing(writes, after);
          record.result = result;
          record.settledAtMs = performance.now();
          return result;
        };
      },
    });
  }

  get heldCount(): number {
    return this.held.length;
  }

  release(): void {
    this.holding = false;
    for (const r of this.held.splice(0)) r();
  }
}

async function setUp(): Promise<{ db: TestDatabase; engine: EngineInstance; gate: GatedStore }> {
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  let gate: GatedStore | undefined;
  const engine = startEngine(db.url, systemClock, {
    settings: { cartBatchesInFlightMax: 2 },
    wrapStore: (store) => (gate = new GatedStore(store)).wrap(),
  });
  cleanup.push(() => engine.stop());
  for (const sku of ['PC-A', 'PC-B']) await engine.registry.createProduct(sku, sku, 100, 'test');
  return { db, engine, gate: gate! };
}

const lines = (a: number, b: number): CartLine[] => [
  { sku: 'PC-A', quantity: a },
  { sku: 'PC-B', quantity: b },
];

function cart(engine: EngineInstance, cartLines: CartLine[], answered?: Map<string, number>): Promise<CommandResult> {
  const reservationId = randomUUID();
  return engine.registry
    .executeCart({
      type: 'reserve',
      reservationId,
      lines: cartLines,
      ttlSeconds: 600,
      idempotencyKey: randomUUID(),
      requestId: 'cart-pipelining-test',
    })
    .then((r) => {
      answered?.set(reservationId, performance.now());
      return r;
    });
}

const headOf = (writes: readonly BatchWrite[], sku: string) => {
  const w = writes.find((x) => x.sku === sku)!;
  return { version: w.counters.version, hash: w.events.at(-1)!.hash };
};
const guardOf = (writes: readonly BatchWrite[], sku: string) => {
  const w = writes.find((x) => x.sku === sku)!;
  return { version: w.versionBefore, hash: w.hashBefore };
};

describe('pipelined batches of carts', () => {
  it('G4 G5: the next batch of carts is decided on top of the one committing, and nobody is answered before their own commit', async () => {
    const { db, engine, gate } = await setUp();
    gate.holding = true;
    const answered = new Map<string, number>();
    const first = cart(engine, lines(1, 2), answered);
    await waitUntil(() => gate.heldCount === 1, 5_000, 'the first batch reaches the store');
    const second = [cart(engine, lines(3, 1), answered), cart(engine, lines(1, 1), answered)];
    await waitUntil(() => gate.heldCount === 2, 5_000, 'the second batch reaches the store');
    expect(answered.size).toBe(0);
    const [a, b] = gate.commits;
    for (const sku of ['PC-A', 'PC-B']) expect(guardOf(b!.writes, sku)).toEqual(headOf(a!.writes, sku));

    gate.release();
    const results = await Promise.all([first, ...second]);
    expect(results.map((r) => r.type === 'done' && r.outcome.kind)).toEqual([
      'reservation',
      'reservation',
      'reservation',
    ]);
    expect(gate.commits.map((c) => c.result?.type)).toEqual(['committed', 'committed']);
    for (const commit of gate.commits) {
      for (const r of commit.writes.flatMap((w) => w.inserted))
        expect(answered.get(r.id)!).toBeGreaterThanOrEqual(commit.settledAtMs!);
    }
    const { rows } = await db.sql.query(`select sku, reserved::int from products order by sku`);
    expect(rows).toEqual([
      { sku: 'PC-A', reserved: 5 },
      { sku: 'PC-B', reserved: 4 },
    ]);
    expect(await databaseViolations(db.sql)).toEqual([]);
  });

  it('G1 G4: when a batch of carts does not commit, the batch decided on top of it does not either, and both are decided again on what the database holds', async () => {
    const { db, engine, gate } = await setUp();
    gate.holding = true;
    const first = cart(engine, lines(1, 1));
    await waitUntil(() => gate.heldCount === 1, 5_000, 'the first batch reaches the store');
    const second = cart(engine, lines(2, 2));
    await waitUntil(() => gate.heldCount === 2, 5_000, 'the second batch reaches the store');
    // Another instance takes the last units of PC-B underneath both batches.
    const other = startEngine(db.url, systemClock);
    cleanup.push(() => other.stop());
    const taken = await other.registry.execute('PC-B', {
      type: 'reserve',
      reservationId: randomUUID(),
      quantity: 98,
      ttlSeconds: 600,
      idempotencyKey: 'underneath',
      requestId: 'other-instance',
    });
    expect(taken).toMatchObject({ type: 'done', outcome: { kind: 'reservation' } });

    gate.release();
    const [one, two] = await Promise.all([first, second]);
    // Both were refused as decided and decided again on what the database holds: 2 units of PC-B
    // were left, so the first (1 of each) fits and the second (2 of each) no longer does.
    expect(gate.commits.slice(0, 2).map((c) => c.result?.type)).toEqual(['conflict', 'conflict']);
    expect(one).toMatchObject({ type: 'done', outcome: { kind: 'reservation', created: true } });
    expect(two).toMatchObject({ type: 'done', outcome: { kind: 'rejected', code: 'insufficient_stock' } });
    const { rows } = await db.sql.query(`select sku, reserved::int from products order by sku`);
    expect(rows).toEqual([
      { sku: 'PC-A', reserved: 1 },
      { sku: 'PC-B', reserved: 99 },
    ]);
    expect(await databaseViolations(db.sql)).toEqual([]);
  });
});
