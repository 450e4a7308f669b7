import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.ts';
import type { CartLine } from '../../src/engine/decide-cart.ts';
import type { CommandResult, InventoryView, Outcome } from '../../src/engine/types.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startEngine, type EngineInstance } from '../support/engine.ts';
import { drive, driveRetrying, releaseAll, StorageGate } from '../support/storage-gate.ts';

// Races of carts with fc.scheduler deciding the order in which storage calls start (see
// test/support/storage-gate.ts): carts over the same products in opposite orders, and a cart
// racing one-product reservations and a sweep on one of its products, over two engine instances.
// Every race must end, oversell nothing, and be explained by some order of its operations.
//
// PROPERTY_RUNS sets the number of runs per property; PROPERTY_SEED and PROPERTY_PATH replay a
// failing run (fast-check prints both).

const numRuns = Number(process.env.PROPERTY_RUNS ?? 60);
const seed = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED);
const path = process.env.PROPERTY_PATH;
const weekMs = 7 * 24 * 3600 * 1000;
/** How long a finished race may take to drain its actors: far beyond any real drain. */
const drainWaitMsMax = 5_000;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

type Letter = 'A' | 'B' | 'C';
const letters: readonly Letter[] = ['A', 'B', 'C'];

/**
 * Two engine instances with gated storage over the file's database. Each run lives in its own
 * week, earlier than the runs before it, so a sweep never finds another run's reservations due.
 */
class CartRace {
  static runs = 0;
  readonly run = CartRace.runs++;
  readonly prefix = `cr${this.run}-${randomUUID().slice(0, 6)}`;
  readonly clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z') - this.run * weekMs);
  readonly gate: StorageGate;
  readonly instances: EngineInstance[];

  constructor(
    private readonly s: fc.Scheduler,
    batchSizeMax: number,
  ) {
    this.gate = new StorageGate(s);
    // The second instance pipelines its batches of carts (two in flight); the first does not.
    this.instances = ['I0', 'I1'].map((name, i) =>
      startEngine(db.url, this.clock, {
        settings: { batchSizeMax, cartBatchesInFlightMax: i + 1 },
        wrapStore: this.gate.wrap(name),
        poolSize: 3,
      }),
    );
  }

  sku(letter: Letter): string {
    return `${this.prefix}-${letter}`;
  }

  get skus(): string[] {
    return letters.map((l) => this.sku(l));
  }

  async createProducts(stocks: readonly number[]): Promise<void> {
    for (const [i, stock] of stocks.entries()) {
      const sku = this.sku(letters[i]!);
      expect((await this.instances[i % 2]!.registry.createProduct(sku, sku, stock, 'req')).type).toBe('created');
    }
  }

  /** A new cart; a retry of it sends the same key with a fresh id, as the API does. */
  cart(via: number, lines: readonly CartLine[], key: string, ttlSeconds = 600): Promise<CommandResult> {
    const idempotencyKey = `${this.prefix}-${key}`;
    return this.instances[via]!.registry.executeCart({
      type: 'reserve',
      reservationId: randomUUID(),
      lines,
      ttlSeconds,
      idempotencyKey,
      requestId: 'req',
    });
  }

  reserveOne(via: number, sku: string, quantity: number, key: string, ttlSeconds = 600): Promise<CommandResult> {
    const idempotencyKey = `${this.prefix}-${key}`;
    return this.instances[via]!.registry.execute(sku, {
      type: 'reserve',
      reservationId: randomUUID(),
      quantity,
      ttlSeconds,
      idempotencyKey,
      requestId: 'req',
    });
  }

  /** G1-G7 in the database, and both instances read what the database holds. */
  async expectConsistent(): Promise<void> {
    this.gate.enabled = false;
    expect(await databaseViolations(db.sql, this.skus)).toEqual([]);
    const { rows } = await db.sql.query(
      `select sku, total::float8, reserved::float8, purchased::float8, version::float8
         from products where sku = any($1::text[]) order by sku`,
      [this.skus],
    );
    for (const row of rows) {
      for (const instance of this.instances) {
        const read = await instance.registry.product(row.sku);
        expect(read?.inventory).toMatchObject(row);
      }
    }
  }

  /**
   * Stops both instances, waiting at most drainWaitMsMax for their actors: deadlocked actors never
   * drain, and the run must fail rather than hang. A run that failed already keeps its own error.
   */
  async stop(failed: boolean): Promise<void> {
    await releaseAll(this.s, this.gate);
    let timer: NodeJS.Timeout | undefined;
    const drained = new Set<EngineInstance>();
    const stopped = Promise.all(this.instances.map((i) => i.stop().then(() => drained.add(i)))).then(
      () => 'stopped' as const,
    );
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), drainWaitMsMax)));
    const how = await Promise.race([stopped, late]).finally(() => clearTimeout(timer));
    if (how === 'stopped') return;
    await Promise.all(this.instances.filter((i) => !drained.has(i)).map((i) => i.pool.end()));
    if (!failed) throw new Error(`the engine did not drain within ${drainWaitMsMax} ms: actors wait for each other`);
  }
}

/** Runs one race on a fresh pair of instances, and stops them whatever happens. */
async function inRace(s: fc.Scheduler, batchSizeMax: number, body: (race: CartRace) => Promise<void>): Promise<void> {
  const race = new CartRace(s, batchSizeMax);
  let failed = true;
  try {
    await body(race);
    failed = false;
  } finally {
    await race.stop(failed);
  }
}

/** A read is a committed state, never a cart's working copy: the counters of some event. */
async function expectCommittedReads(reads: readonly InventoryView[]): Promise<void> {
  for (const { sku, total, reserved, purchased, version } of reads) {
    const { rows } = await db.sql.query(
      `select total::float8, reserved::float8, purchased::float8 from inventory_events where sku = $1 and seq = $2`,
      [sku, version],
    );
    expect(rows, `read of ${sku} at version ${version}`).toEqual([{ total, reserved, purchased }]);
  }
}

function outcomeOf(result: CommandResult): Outcome {
  expect(result.type, JSON.stringify(result)).toBe('done');
  return (result as Extract<CommandResult, { type: 'done' }>).outcome;
}

/** The lines of a reservation in the database, as [sku, quantity, status], in line order. */
async function rowsOf(id: string): Promise<[string, number, string][]> {
  const { rows } = await db.sql.query(`select sku, quantity, status from reservations where id = $1 order by line`, [
    id,
  ]);
  return rows.map((r) => [r.sku, r.quantity, r.status]);
}

/**
 * All or nothing, in the database: a cart the engine reserved has every line active as asked; a
 * refused one left no line anywhere (the refusal is an event on each product, with no reservation).
 */
async function expectWholeOrNothing(outcome: Outcome, lines: readonly CartLine[]): Promise<void> {
  if (outcome.kind === 'reservation') {
    expect(await rowsOf(outcome.reservation.id)).toEqual(lines.map((l) => [l.sku, l.quantity, 'active']));
  } else {
    expect(outcome).toMatchObject({ kind: 'rejected', code: 'insufficient_stock' });
  }
}

// ---------------------------------------------------------------------------------------------
// Serial explanations: a race is right when some order of its operations, run one at a time,
// gives exactly the answers the engine gave.

/** What a serial run predicts for an operation: reserved, or refused with its short lines. */
type Predicted = { readonly ok: true } | { readonly ok: false; readonly short?: readonly ShortLine[] };
type ShortLine = { readonly sku: string; readonly requested: number; readonly available: number };

/** Comparable text of a prediction (a stored answer comes back from jsonb with its keys reordered). */
const textOf = (p: Predicted) =>
  p.ok ? 'ok' : `refused ${(p.short ?? []).map((l) => `${l.sku}:${l.requested}:${l.available}`).join(' ')}`;

type SerialOp =
  | { readonly type: 'cart'; readonly lines: readonly CartLine[] }
  | { readonly type: 'one'; readonly sku: string; readonly quantity: number }
  /** The sweep: the due reservation's stock returns. */
  | { readonly type: 'release'; readonly lines: readonly CartLine[] };

function runSerially(available: ReadonlyMap<string, number>, ops: readonly SerialOp[]): Predicted[] {
  const left = new Map(available);
  return ops.map((op): Predicted => {
    switch (op.type) {
      case 'release':
        for (const l of op.lines) left.set(l.sku, left.get(l.sku)! + l.quantity);
        return { ok: true };
      case 'one': {
        if (left.get(op.sku)! < op.quantity) return { ok: false };
        left.set(op.sku, left.get(op.sku)! - op.quantity);
        return { ok: true };
      }
      case 'cart': {
        const short = [...op.lines]
          .sort((a, b) => (a.sku < b.sku ? -1 : 1))
          .filter((l) => left.get(l.sku)! < l.quantity)
          .map((l) => ({ sku: l.sku, requested: l.quantity, available: left.get(l.sku)! }));
        if (short.length > 0) return { ok: false, short };
        for (const l of op.lines) left.set(l.sku, left.get(l.sku)! - l.quantity);
        return { ok: true };
      }
    }
  });
}

function predictedOf(outcome: Outcome, op: SerialOp): Predicted {
  if (outcome.kind !== 'rejected') return { ok: true };
  return op.type === 'cart' ? { ok: false, short: outcome.lines ?? [] } : { ok: false };
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

/** Some order of the operations explains every answer (the engine serialized them). */
function expectSerializable(
  available: ReadonlyMap<string, number>,
  ops: readonly SerialOp[],
  answers: readonly Outcome[],
): void {
  const actual = answers.map((o, i) => predictedOf(o, ops[i]!));
  const explained = permutations(ops.map((_, i) => i)).some((order) => {
    const predicted = runSerially(
      available,
      order.map((i) => ops[i]!),
    );
    return order.every((i, at) => textOf(predicted[at]!) === textOf(actual[i]!));
  });
  expect(explained, `no serial order explains ${actual.map(textOf).join(', ')} for ${JSON.stringify(ops)}`).toBe(true);
}

// ---------------------------------------------------------------------------------------------

const via = fc.constantFrom(0, 1);
const batchSizeMax = fc.integer({ min: 1, max: 4 });
const stocks = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 3, maxLength: 3 });
const subset = fc.uniqueArray(fc.constantFrom<Letter>(...letters), { minLength: 2, maxLength: 3 });
const quantities = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 3, maxLength: 3 });
/** A one-product reservation of A or B (products the cart may share), through either instance. */
const single = fc.record({ letter: fc.constantFrom<Letter>('A', 'B'), quantity: fc.integer({ min: 1, max: 3 }), via });

describe('carts racing', () => {
  it('G1 G2: two carts over shared products in opposite orders both finish, oversell nothing, serialize', async () => {
    const caseArb = fc.record({
      stocks,
      first: subset,
      second: subset,
      q1: quantities,
      q2: quantities,
      via1: via,
      via2: via,
      // A retry of the first cart with its key, through either instance, racing its original.
      retry: fc.option(via),
      // Reads keep actors busy across a storage call, so a cart may find one of its products taken.
      reads: fc.array(fc.record({ via, letter: fc.constantFrom<Letter>(...letters) }), { minLength: 1, maxLength: 4 }),
      batchSizeMax,
    });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), caseArb, async (s, c) => {
        await inRace(s, c.batchSizeMax, async (race) => {
          await race.createProducts(c.stocks);
          // Two subsets of two or three of three products always share one.
          const first = [...c.first].sort().map((l, i) => ({ sku: race.sku(l), quantity: c.q1[i]! }));
          const second = [...c.second]
            .sort()
            .reverse()
            .map((l, i) => ({ sku: race.sku(l), quantity: c.q2[i]! }));
          race.gate.enabled = true;
          const sends = [
            () => race.cart(c.via1, first, 'first'),
            () => race.cart(c.via2, second, 'second'),
            ...(c.retry === null ? [] : [() => race.cart(c.retry!, first, 'first')]),
          ];
          const [results, reads] = await drive(
            s,
            race.gate,
            Promise.all([
              Promise.all(sends.map((send) => send())),
              Promise.all(c.reads.map((r) => race.instances[r.via]!.registry.product(race.sku(r.letter)))),
            ]),
          );
          const answers = await Promise.all(
            results.map((r, i) =>
              r.type === 'failed' && r.code === 'storage_unavailable'
                ? driveRetrying(s, race.gate, sends[i]!)
                : Promise.resolve(r),
            ),
          );
          race.gate.enabled = false;

          const outcomes = answers.map(outcomeOf);
          // G2: the retry got the first cart's answer, and only one of the two ran.
          if (c.retry !== null) {
            expect(outcomes[2]).toEqual(outcomes[0]);
            expect(answers.filter((a, i) => i !== 1 && a.type === 'done' && !a.replayed)).toHaveLength(1);
          }
          await expectWholeOrNothing(outcomes[0]!, first);
          await expectWholeOrNothing(outcomes[1]!, second);
          const available = new Map(race.skus.map((sku, i) => [sku, c.stocks[i]!]));
          const ops: SerialOp[] = [
            { type: 'cart', lines: first },
            { type: 'cart', lines: second },
          ];
          expectSerializable(available, ops, outcomes.slice(0, 2));
          await expectCommittedReads(reads.map((r) => r!.inventory));
          await race.expectConsistent();
        });
      }),
      { numRuns, seed, path, verbose: 1 },
    );
  }, 600_000);

  it('G1 G6: a cart racing one-product reservations and a sweep on its product is all or nothing', async () => {
    const caseArb = fc.record({
      stocks,
      // Due before the race starts: a one-product reservation of A, or a cart over A and C.
      due: fc.constantFrom('one' as const, 'cart' as const),
      dueQuantity: fc.integer({ min: 1, max: 3 }),
      cart: subset.filter((l) => l.includes('A')),
      quantities,
      cartVia: via,
      singles: fc.array(single, { minLength: 1, maxLength: 3 }),
      sweepVia: via,
      batchSizeMax,
    });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), caseArb, async (s, c) => {
        await inRace(s, c.batchSizeMax, async (race) => {
          const [a, , cSku] = race.skus as [string, string, string];
          const dueLines = (c.due === 'one' ? [a] : [a, cSku]).map((sku) => ({ sku, quantity: c.dueQuantity }));
          // The due reservation holds stock of its own, on top of what the race may take.
          const held = (sku: string) => (dueLines.some((l) => l.sku === sku) ? c.dueQuantity : 0);
          await race.createProducts(c.stocks.map((stock, i) => stock + held(race.skus[i]!)));
          const due =
            c.due === 'one'
              ? await race.reserveOne(0, a, c.dueQuantity, 'due', 1)
              : await race.cart(1, dueLines, 'due', 1);
          const dueId = (outcomeOf(due) as Extract<Outcome, { kind: 'reservation' }>).reservation.id;
          race.clock.advance(1000);

          const lines = c.cart.map((l, i) => ({ sku: race.sku(l), quantity: c.quantities[i]! }));
          race.gate.enabled = true;
          const sends = [
            () => race.cart(c.cartVia, lines, 'cart'),
            ...c.singles.map(
              (one, i) => () => race.reserveOne(one.via, race.sku(one.letter), one.quantity, `one-${i}`),
            ),
          ];
          const [results, report] = await drive(
            s,
            race.gate,
            Promise.all([Promise.all(sends.map((send) => send())), race.instances[c.sweepVia]!.sweeper.sweepOnce()]),
          );
          const answers = await Promise.all(
            results.map((r, i) =>
              r.type === 'failed' && r.code === 'storage_unavailable'
                ? driveRetrying(s, race.gate, sends[i]!)
                : Promise.resolve(r),
            ),
          );
          race.gate.enabled = false;

          // G6: the sweep expired the due reservation, whole, exactly once.
          expect(report).toEqual({ due: dueLines.length, expired: 1, failed: 0 });
          expect((await rowsOf(dueId)).map((r) => r[2])).toEqual(dueLines.map(() => 'expired'));
          const outcomes = answers.map(outcomeOf);
          await expectWholeOrNothing(outcomes[0]!, lines);
          const ops: SerialOp[] = [
            { type: 'cart', lines },
            ...c.singles.map((one): SerialOp => ({ type: 'one', sku: race.sku(one.letter), quantity: one.quantity })),
            { type: 'release', lines: dueLines },
          ];
          const available = new Map(race.skus.map((sku, i) => [sku, c.stocks[i]!]));
          expectSerializable(available, ops, [...outcomes, { kind: 'noop' }]);
          await race.expectConsistent();
        });
      }),
      { numRuns, seed, path, verbose: 1 },
    );
  }, 600_000);
});
