import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.ts';
import type { Command, CommandResult, Outcome } from '../../src/engine/types.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startEngine, type EngineInstance } from '../support/engine.ts';
import { reservationOp } from '../support/reservation-op.ts';
import { drive, driveRetrying, releaseAll, StorageGate } from '../support/storage-gate.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';

// Races on the actor, the idempotency path and the version check, with fc.scheduler deciding
// the order in which storage calls start (the gate and the driver of test/support/storage-gate.ts):
// a run explores one interleaving of storage calls across actors, instances and the sweeper, and a
// failing seed replays the same interleaving.
//
// PROPERTY_RUNS sets the number of runs per property; PROPERTY_SEED and PROPERTY_PATH replay a
// failing run (fast-check prints both).

const numRuns = Number(process.env.PROPERTY_RUNS ?? 40);
const seed = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED);
const path = process.env.PROPERTY_PATH;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

// ---------------------------------------------------------------------------------------------
// Two instances on one database, with gated storage

class Race {
  readonly clock: ManualClock;
  readonly gate: StorageGate;
  readonly instances: EngineInstance[];
  readonly sku = `race-${randomUUID().slice(0, 8)}`;

  constructor(
    private readonly s: fc.Scheduler,
    batchSizeMax: number,
    startMs = Date.parse('2026-01-01T00:00:00Z'),
  ) {
    this.clock = new ManualClock(startMs);
    this.gate = new StorageGate(s);
    this.instances = ['A', 'B'].map((name) =>
      startEngine(db.url, this.clock, { settings: { batchSizeMax }, wrapStore: this.gate.wrap(name), poolSize: 3 }),
    );
  }

  send(via: number, command: Exclude<Command, { type: 'expire' }>): Promise<CommandResult> {
    const registry = this.instances[via]!.registry;
    return command.type === 'purchase' || command.type === 'cancel'
      ? registry.executeReservationOp(reservationOp(command))
      : registry.execute(this.sku, command);
  }

  async createProduct(stock: number): Promise<void> {
    const result = await this.instances[0]!.registry.createProduct(this.sku, this.sku, stock, 'req');
    expect(result.type).toBe('created');
  }

  /** A reservation made before the race (ungated); null when the stock did not allow it. */
  async reserve(quantity: number, ttlSeconds = 600): Promise<string | null> {
    const result = await this.send(0, reserveCommand(quantity, `pre-${randomUUID()}`, ttlSeconds));
    return result.type === 'done' && result.outcome.kind === 'reservation' ? result.outcome.reservation.id : null;
  }

  /** G1-G7 in the database, and both instances read what the database holds. */
  async expectConsistent(): Promise<void> {
    this.gate.enabled = false;
    expect(await databaseViolations(db.sql, [this.sku])).toEqual([]);
    const {
      rows: [row],
    } = await db.sql.query(
      `select total::float8, reserved::float8, purchased::float8, version::float8 from products where sku = $1`,
      [this.sku],
    );
    for (const instance of this.instances) {
      const read = await instance.registry.product(this.sku);
      expect(read?.inventory).toMatchObject(row);
    }
  }

  /** Also after a failed run: storage calls still parked at a gate are let through first. */
  async stop(): Promise<void> {
    await releaseAll(this.s, this.gate);
    await Promise.all(this.instances.map((i) => i.stop()));
  }
}

function reserveCommand(quantity: number, key: string, ttlSeconds = 600): Extract<Command, { type: 'reserve' }> {
  return { type: 'reserve', reservationId: randomUUID(), quantity, ttlSeconds, idempotencyKey: key, requestId: 'req' };
}

async function eventsWithKey(sku: string, key: string): Promise<string[]> {
  const { rows } = await db.sql.query(
    `select type from inventory_events where sku = $1 and idempotency_key = $2 order by seq`,
    [sku, key],
  );
  return rows.map((r) => r.type);
}

async function storedOutcome(sku: string, key: string): Promise<Outcome[]> {
  const { rows } = await db.sql.query(`select outcome from idempotency_records where sku = $1 and key = $2`, [
    sku,
    key,
  ]);
  return rows.map((r) => r.outcome);
}

async function reservationStatus(id: string): Promise<string | undefined> {
  const { rows } = await db.sql.query(`select status from reservations where id = $1`, [id]);
  return rows[0]?.status;
}

function outcomeOf(result: CommandResult): Outcome {
  expect(result.type, JSON.stringify(result)).toBe('done');
  return (result as Extract<CommandResult, { type: 'done' }>).outcome;
}

const via = fc.constantFrom(0, 1);
const batchSizeMax = fc.integer({ min: 1, max: 4 });

// ---------------------------------------------------------------------------------------------
// Commands of two instances on one product, and what "each took effect once" means for them

type Sent = { readonly via: number; readonly command: Exclude<Command, { type: 'expire' }> };

const opArb = fc.oneof(
  fc.record({ op: fc.constant('reserve' as const), via, quantity: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constantFrom('purchase' as const, 'cancel' as const), via, pick: fc.nat(), keyed: fc.boolean() }),
  fc.record({ op: fc.constant('adjust' as const), via, delta: fc.integer({ min: -4, max: 4 }).filter((d) => d !== 0) }),
  // The same request again (same key and payload), possibly through the other instance.
  fc.record({ op: fc.constant('duplicate' as const), via, pick: fc.nat() }),
);

type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

/** The commands the ops stand for; purchases and cancels pick among the reservations made before. */
function commandsOf(ops: readonly Op[], existing: readonly string[]): Sent[] {
  const sent: Sent[] = [];
  ops.forEach((o, i) => {
    if (o.op === 'duplicate') {
      const keyed = sent.filter((x) => x.command.idempotencyKey !== null);
      const original = keyed[o.pick % Math.max(keyed.length, 1)]?.command;
      if (original !== undefined)
        sent.push({
          via: o.via,
          command: original.type === 'reserve' ? { ...original, reservationId: randomUUID() } : original,
        });
    } else if (o.op === 'reserve') {
      sent.push({ via: o.via, command: reserveCommand(o.quantity, `k${i}`) });
    } else if (o.op === 'adjust') {
      sent.push({
        via: o.via,
        command: { type: 'adjust', delta: o.delta, reason: 'count', idempotencyKey: `k${i}`, requestId: 'req' },
      });
    } else if (existing.length > 0) {
      const id = existing[o.pick % existing.length]!;
      sent.push({
        via: o.via,
        command: { type: o.op, reservationId: id, idempotencyKey: o.keyed ? `k${i}` : null, requestId: 'req' },
      });
    }
  });
  return sent;
}

/**
 * Exactly once: the reservations in the database are those made before and those acknowledged;
 * every acknowledged purchase or cancel is the status the database holds; every key has one
 * stored answer, which every request with that key got, and at most one event.
 */
async function expectEachOnce(
  race: Race,
  existing: readonly string[],
  sent: readonly Sent[],
  outcomes: readonly Outcome[],
): Promise<void> {
  const created = outcomes.flatMap((o) => (o.kind === 'reservation' && o.created ? [o.reservation.id] : []));
  const { rows } = await db.sql.query(`select id::text, status from reservations where sku = $1`, [race.sku]);
  expect(rows.map((r) => r.id).sort()).toEqual([...new Set([...existing, ...created])].sort());

  const statusOf = new Map(rows.map((r) => [r.id, r.status]));
  for (const [i, o] of outcomes.entries()) {
    const command = sent[i]!.command;
    if ((command.type === 'purchase' || command.type === 'cancel') && o.kind === 'reservation') {
      expect(statusOf.get(command.reservationId), `${command.type} ${command.reservationId}`).toBe(
        o.reservation.status,
      );
    }
  }

  const byKey = new Map<string, Outcome[]>();
  sent.forEach(({ command }, i) => {
    if (command.idempotencyKey !== null)
      byKey.set(command.idempotencyKey, [...(byKey.get(command.idempotencyKey) ?? []), outcomes[i]!]);
  });
  for (const [key, answered] of byKey) {
    for (const o of answered) expect(o, `answers for ${key}`).toEqual(answered[0]);
    expect(await storedOutcome(race.sku, key)).toEqual([answered[0]]);
    expect((await eventsWithKey(race.sku, key)).length, `events of ${key}`).toBeLessThanOrEqual(1);
  }
}

// ---------------------------------------------------------------------------------------------

describe('races', () => {
  it('G2: in-flight duplicates of one Idempotency-Key, through one or both instances, take effect once and all get its answer', async () => {
    const caseArb = fc.record({
      kind: fc.constantFrom('reserve' as const, 'purchase' as const, 'adjust' as const),
      stock: fc.integer({ min: 0, max: 6 }),
      quantity: fc.integer({ min: 1, max: 4 }),
      copies: fc.array(via, { minLength: 2, maxLength: 5 }),
      others: fc.array(fc.record({ via, quantity: fc.integer({ min: 1, max: 3 }) }), { maxLength: 3 }),
      batchSizeMax,
    });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), caseArb, async (s, c) => {
        const race = new Race(s, c.batchSizeMax);
        try {
          await race.createProduct(c.stock + (c.kind === 'purchase' ? c.quantity : 0));
          const key = 'the-key';
          let command: Exclude<Command, { type: 'expire' }>;
          if (c.kind === 'purchase') {
            const id = (await race.reserve(c.quantity))!;
            command = { type: 'purchase', reservationId: id, idempotencyKey: key, requestId: 'req' };
          } else if (c.kind === 'adjust') {
            command = { type: 'adjust', delta: -c.quantity, reason: 'count', idempotencyKey: key, requestId: 'req' };
          } else {
            command = reserveCommand(c.quantity, key);
          }
          race.gate.enabled = true;
          // A retried reserve arrives with a fresh reservation id (the API makes one per request).
          const copy = () => (command.type === 'reserve' ? { ...command, reservationId: randomUUID() } : command);
          const all = Promise.all([
            ...c.copies.map((v) => race.send(v, copy())),
            ...c.others.map((o, i) => race.send(o.via, reserveCommand(o.quantity, `other-${i}`))),
          ]);
          const results = await drive(s, race.gate, all);
          const answers = await Promise.all(
            results
              .slice(0, c.copies.length)
              .map((r, i) =>
                r.type === 'failed' && r.code === 'storage_unavailable'
                  ? driveRetrying(s, race.gate, () => race.send(c.copies[i]!, copy()))
                  : Promise.resolve(r),
              ),
          );
          race.gate.enabled = false;

          const first = outcomeOf(answers[0]!);
          for (const answer of answers) expect(outcomeOf(answer)).toEqual(first);
          expect(
            answers.filter((a) => a.type === 'done' && !a.replayed),
            'exactly one answer executed',
          ).toHaveLength(1);
          expect(await storedOutcome(race.sku, key)).toEqual([first]);
          expect(await eventsWithKey(race.sku, key)).toHaveLength(1);
          if (first.kind === 'reservation' && command.type === 'reserve') {
            expect(await reservationStatus(first.reservation.id)).toBe('active');
          }
          await race.expectConsistent();
        } finally {
          await race.stop();
        }
      }),
      { numRuns, seed, path, verbose: 1 },
    );
  }, 600_000);

  it('G1 G2: a second instance writing the same product races a batch: nothing oversold, every command takes effect exactly once', async () => {
    const caseArb = fc.record({
      stock: fc.integer({ min: 0, max: 10 }),
      before: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 3 }),
      ops: fc.array(opArb, { minLength: 2, maxLength: 10 }),
      // Reads through either instance, racing the writes.
      reads: fc.array(via, { maxLength: 3 }),
      // Passivation of idle actors, at a moment the scheduler picks.
      passivations: fc.array(via, { maxLength: 2 }),
      batchSizeMax,
    });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), caseArb, async (s, c) => {
        const race = new Race(s, c.batchSizeMax);
        try {
          await race.createProduct(c.stock);
          const existing: string[] = [];
          for (const q of c.before) {
            const id = await race.reserve(q);
            if (id !== null) existing.push(id);
          }
          const sent = commandsOf(c.ops, existing);
          race.gate.enabled = true;
          const [first, reads] = await drive(
            s,
            race.gate,
            Promise.all([
              Promise.all(sent.map((x) => race.send(x.via, x.command))),
              Promise.all(c.reads.map((v) => race.instances[v]!.registry.product(race.sku))),
              Promise.all(
                c.passivations.map((v) =>
                  s
                    .schedule(Promise.resolve(), `passivate idle actors of ${'AB'[v]}`)
                    .then(() => race.instances[v]!.registry.passivateIdle()),
                ),
              ),
            ]),
          );
          const results = await Promise.all(
            first.map((r, i) =>
              r.type === 'failed' && r.code === 'storage_unavailable'
                ? driveRetrying(s, race.gate, () => race.send(sent[i]!.via, sent[i]!.command))
                : Promise.resolve(r),
            ),
          );
          race.gate.enabled = false;
          await expectEachOnce(race, existing, sent, results.map(outcomeOf));
          // A read is a committed state, never a batch's working copy: the counters of some event.
          for (const read of reads) {
            const { total, reserved, purchased, version } = read!.inventory;
            const { rows } = await db.sql.query(
              `select total::float8, reserved::float8, purchased::float8 from inventory_events where sku = $1 and seq = $2`,
              [race.sku, version],
            );
            expect(rows, `read at version ${version}`).toEqual([{ total, reserved, purchased }]);
          }
          await race.expectConsistent();
        } finally {
          await race.stop();
        }
      }),
      { numRuns, seed, path, verbose: 1 },
    );
  }, 600_000);
});

describe('races with the sweeper', () => {
  // Each run lives in its own week, earlier than the runs before it, so a sweep never meets
  // another run's reservations as due.
  let run = 0;

  it('G2 G6: a sweep racing a purchase (and a cancel) ends the reservation exactly once, and the answers say how', async () => {
    const caseArb = fc.record({
      quantity: fc.integer({ min: 1, max: 3 }),
      ttlSeconds: fc.integer({ min: 1, max: 5 }),
      // The boundary itself most often: at expiresAt a reservation is expired, not purchasable.
      offsetMs: fc.constantFrom(0, 0, -1, 1),
      purchaseVia: via,
      sweepVia: via,
      keyed: fc.boolean(),
      cancelVia: fc.option(via),
      batchSizeMax,
    });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), caseArb, async (s, c) => {
        const race = new Race(s, c.batchSizeMax, Date.parse('2026-01-01T00:00:00Z') - ++run * 7 * 24 * 3600 * 1000);
        try {
          await race.createProduct(5);
          const id = (await race.reserve(c.quantity, c.ttlSeconds))!;
          const expiresAtMs = race.clock.nowMs() + c.ttlSeconds * 1000;
          race.gate.enabled = true;

          const purchase = {
            type: 'purchase',
            reservationId: id,
            idempotencyKey: c.keyed ? 'buy' : null,
            requestId: 'req',
          } as const;
          const cancel = { type: 'cancel', reservationId: id, idempotencyKey: null, requestId: 'req' } as const;
          const clockMoved = s
            .schedule(Promise.resolve(), `clock -> expiresAt${c.offsetMs >= 0 ? '+' : ''}${c.offsetMs}ms`)
            .then(() => race.clock.advance(expiresAtMs + c.offsetMs - race.clock.nowMs()));
          const [purchased, cancelled, report] = await drive(
            s,
            race.gate,
            Promise.all([
              race.send(c.purchaseVia, purchase),
              c.cancelVia === null ? Promise.resolve(null) : race.send(c.cancelVia, cancel),
              race.instances[c.sweepVia]!.sweeper.sweepOnce(),
              clockMoved,
            ]),
          );
          const purchaseAnswer = outcomeOf(
            purchased.type === 'failed'
              ? await driveRetrying(s, race.gate, () => race.send(c.purchaseVia, purchase))
              : purchased,
          );
          const cancelAnswer =
            cancelled === null
              ? null
              : outcomeOf(
                  cancelled.type === 'failed'
                    ? await driveRetrying(s, race.gate, () => race.send(c.cancelVia!, cancel))
                    : cancelled,
                );
          race.gate.enabled = false;

          const status = await reservationStatus(id);
          const { rows: events } = await db.sql.query(
            `select type, source from inventory_events where reservation_id = $1 and type <> 'rejected' order by seq`,
            [id],
          );
          // One end, and every answer agrees with it.
          expect(events.map((e) => e.type)).toEqual(['reserved', status]);
          const said = (o: Outcome) =>
            o.kind === 'reservation'
              ? o.reservation.status
              : o.kind === 'rejected'
                ? o.code.replace('reservation_', '')
                : o.kind;
          expect(said(purchaseAnswer)).toBe(status);
          if (cancelAnswer !== null) expect(said(cancelAnswer)).toBe(status);
          // Purchased or cancelled only before expiresAt, expired only at or after it.
          const {
            rows: [row],
          } = await db.sql.query(
            `select (extract(epoch from finished_at) * 1000)::float8 as finished_at_ms from reservations where id = $1`,
            [id],
          );
          if (status === 'expired') expect(row.finished_at_ms).toBeGreaterThanOrEqual(expiresAtMs);
          else expect(row.finished_at_ms).toBeLessThan(expiresAtMs);
          if (c.offsetMs < 0) expect(status).not.toBe('expired');
          expect(report.failed).toBe(0);
          expect(report.expired).toBe(status === 'expired' && events[1].source === 'sweeper' ? 1 : 0);
          await race.expectConsistent();
        } finally {
          await race.stop();
        }
      }),
      { numRuns, seed, path, verbose: 1 },
    );
  }, 600_000);
});
