import { stockAfter } from '../../src/engine/replay.ts';
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { decide, productCreatedEvent, type Decision, type DecisionView } from '../../src/engine/decide.ts';
import { nextStatus, type LifecycleEvent } from '../../src/engine/lifecycle.ts';
import { stockMax } from '../../src/engine/limits.ts';
import type { Command, Counters, EventDraft, Reservation, ReservationStatus } from '../../src/engine/types.ts';

// Pure properties of decide() and the reservation lifecycle: no database, so many runs.
// PROPERTY_RUNS scales them with the other property files (x40 here, 2000 by default).

const numRuns = process.env.PROPERTY_RUNS === undefined ? 2000 : Number(process.env.PROPERTY_RUNS) * 40;
const params = { numRuns };

const sku = 'P';
const baseMs = Date.parse('2026-03-01T00:00:00Z');
const finalStatuses = ['purchased', 'cancelled', 'expired'] as const;
const statuses: readonly ReservationStatus[] = ['active', ...finalStatuses];

// ---------------------------------------------------------------------------------------------
// Arbitraries: a product's state as an actor holds it, and a command about it

interface Scenario {
  readonly counters: Counters;
  readonly reservations: readonly Reservation[];
}

const reservationArb = (id: string): fc.Arbitrary<Reservation> =>
  fc
    .record({
      quantity: fc.integer({ min: 1, max: 10 }),
      status: fc.constantFrom(...statuses),
      ttlMs: fc.integer({ min: 1, max: 600 }).map((s) => s * 1000),
      finishedAfterMs: fc.integer({ min: 0, max: 600_000 }),
    })
    .map(({ quantity, status, ttlMs, finishedAfterMs }) => ({
      id,
      sku,
      quantity,
      status,
      createdAtMs: baseMs,
      expiresAtMs: baseMs + ttlMs,
      finishedAtMs: status === 'active' ? null : baseMs + finishedAfterMs,
      line: 0,
      lines: 1,
      purchasedQuantity: status === 'purchased' ? quantity : null,
    }));

const ids = [
  '00000000-0000-4000-8000-00000000000a',
  '00000000-0000-4000-8000-00000000000b',
  '00000000-0000-4000-8000-00000000000c',
  '00000000-0000-4000-8000-00000000000d',
];

/** A state that satisfies G1 and G3, whose reserved counter is the sum of its active reservations. */
const scenarioArb: fc.Arbitrary<Scenario> = fc
  .tuple(
    fc.subarray(ids).chain((chosen) => fc.tuple(...chosen.map(reservationArb))),
    fc.integer({ min: 0, max: 40 }),
    fc.integer({ min: 0, max: 40 }),
    fc.integer({ min: 1, max: 1000 }),
  )
  .map(([reservations, purchasedElsewhere, available, version]) => {
    const reserved = sum(reservations.filter((r) => r.status === 'active'));
    const purchased = sum(reservations.filter((r) => r.status === 'purchased')) + purchasedElsewhere;
    return { counters: { total: reserved + purchased + available, reserved, purchased, version }, reservations };
  });

const commandArb = (scenario: Scenario): fc.Arbitrary<Command> => {
  const known = scenario.reservations.map((r) => r.id);
  const reserve = fc
    .record({ quantity: fc.integer({ min: 1, max: 50 }), ttlSeconds: fc.integer({ min: 1, max: 86_400 }) })
    .map(({ quantity, ttlSeconds }): Command => ({
      type: 'reserve',
      reservationId: '00000000-0000-4000-8000-0000000000ff',
      quantity,
      ttlSeconds,
      idempotencyKey: 'k',
      requestId: 'r',
    }));
  const adjust = fc
    .oneof(
      fc.integer({ min: -60, max: 60 }).filter((d) => d !== 0),
      fc.integer({ min: 1, max: stockMax }),
    )
    .map((delta): Command => ({ type: 'adjust', delta, reason: 'count', idempotencyKey: 'k', requestId: 'r' }));
  // The actor answers reservation_not_found before decide; the sweeper may name anything.
  const expire = fc
    .constantFrom(...known, ids[3]!)
    .map((reservationId): Command => ({ type: 'expire', reservationId }));
  if (known.length === 0) return fc.oneof(reserve, adjust, expire);
  const finish = fc
    .tuple(
      fc.constantFrom<'purchase' | 'cancel'>('purchase', 'cancel'),
      fc.constantFrom(...known),
      fc.option(fc.constant('k')),
    )
    .map(([type, reservationId, idempotencyKey]): Command => ({ type, reservationId, idempotencyKey, requestId: 'r' }));
  return fc.oneof(reserve, adjust, expire, finish, finish);
};

/** Time: anywhere from creation to well past every expiry, with the exact expiries likely. */
const nowArb = (scenario: Scenario): fc.Arbitrary<number> =>
  fc.oneof(
    fc.integer({ min: baseMs, max: baseMs + 700_000 }),
    ...scenario.reservations.map((r) => fc.constantFrom(r.expiresAtMs - 1, r.expiresAtMs, r.expiresAtMs + 1)),
  );

const caseArb = scenarioArb.chain((scenario) =>
  fc.record({
    scenario: fc.constant(scenario),
    command: commandArb(scenario),
    nowMs: nowArb(scenario),
  }),
);

function viewOf(s: Scenario): DecisionView {
  const byId = new Map(s.reservations.map((r) => [r.id, r]));
  return {
    sku,
    counters: s.counters,
    activeReservations: s.reservations.filter((r) => r.status === 'active').length,
    reservation: (id) => byId.get(id),
  };
}

function sum(rs: readonly Reservation[]): number {
  return rs.reduce((n, r) => n + r.quantity, 0);
}

function withinBounds(c: Counters): boolean {
  return (
    c.total >= 0 && c.reserved >= 0 && c.purchased >= 0 && c.reserved + c.purchased <= c.total && c.total <= stockMax
  );
}

/** What an event does to the counters before it (the replay rule of docs/DESIGN.md's audit log). */
function replay(c: Omit<Counters, 'version'>, e: EventDraft): Omit<Counters, 'version'> {
  const after = stockAfter(c, e);
  if (after === null) throw new Error(`event ${e.seq} (${e.type}) lacks the field its type needs`);
  return after;
}

const countersOf = (e: EventDraft) => ({ total: e.total, reserved: e.reserved, purchased: e.purchased });
const withoutVersion = ({ total, reserved, purchased }: Counters) => ({ total, reserved, purchased });

// ---------------------------------------------------------------------------------------------

describe('decide', () => {
  test.prop([caseArb], params)(
    'G1 G3: from counters within bounds, every decision leaves them within bounds',
    ({ scenario, command, nowMs }) => {
      const d = decide(viewOf(scenario), command, nowMs);
      expect(withinBounds(d.counters)).toBe(true);
      for (const e of d.events) expect(withinBounds({ ...countersOf(e), version: e.seq })).toBe(true);
    },
  );

  test.prop([caseArb], params)(
    'G4 G7: the version grows by the number of events, and each event states the counters its replay gives',
    ({ scenario, command, nowMs }) => {
      const d = decide(viewOf(scenario), command, nowMs);
      expect(d.counters.version).toBe(scenario.counters.version + d.events.length);
      let counters = withoutVersion(scenario.counters);
      d.events.forEach((e, i) => {
        expect(e.seq).toBe(scenario.counters.version + i + 1);
        counters = replay(counters, e);
        expect(countersOf(e)).toEqual(counters);
        expect(e.atMs).toBe(nowMs);
      });
      expect(withoutVersion(d.counters)).toEqual(counters);
    },
  );

  test.prop([caseArb], params)(
    'a rejection changes no counter but the version (after expiring an overdue reservation)',
    ({ scenario, command, nowMs }) => {
      const d = decide(viewOf(scenario), command, nowMs);
      fc.pre(d.outcome.kind === 'rejected');
      const last = d.events.at(-1)!;
      expect(last).toMatchObject({ type: 'rejected', code: (d.outcome as { code: string }).code });
      expect(d.inserted).toEqual([]);
      if (d.events.length === 1) {
        expect(withoutVersion(d.counters)).toEqual(withoutVersion(scenario.counters));
        expect(d.changed).toEqual([]);
      } else {
        // The only two-event rejection: purchase or cancel past expiresAt expires it, then refuses.
        expect(d.events.map((e) => e.type)).toEqual(['expired', 'rejected']);
        expect(d.outcome).toMatchObject({ code: 'reservation_expired' });
        expect(countersOf(last)).toEqual(countersOf(d.events[0]!));
      }
    },
  );

  test.prop([caseArb], params)(
    'terminal states absorb: a purchased, cancelled or expired reservation never changes again',
    ({ scenario, command, nowMs }) => {
      fc.pre('reservationId' in command && command.type !== 'reserve');
      const target = viewOf(scenario).reservation((command as { reservationId: string }).reservationId);
      fc.pre(target !== undefined && target.status !== 'active');
      const d = decide(viewOf(scenario), command, nowMs);
      expect(d.changed).toEqual([]);
      expect(d.reservations).toEqual([]);
      expect(withoutVersion(d.counters)).toEqual(withoutVersion(scenario.counters));
    },
  );

  test.prop([caseArb], params)(
    'G2: purchasing a purchased or cancelling a cancelled reservation is a replay: same reservation, no event',
    ({ scenario, command, nowMs }) => {
      fc.pre(command.type === 'purchase' || command.type === 'cancel');
      const r = viewOf(scenario).reservation((command as { reservationId: string }).reservationId)!;
      fc.pre(r.status === (command.type === 'purchase' ? 'purchased' : 'cancelled'));
      const d = decide(viewOf(scenario), command, nowMs);
      expect(d.events).toEqual([]);
      expect(d.counters).toEqual(scenario.counters);
      expect(d.outcome).toMatchObject({
        kind: 'reservation',
        created: false,
        reservation: { id: r.id, status: r.status },
      });
    },
  );

  test.prop([caseArb], params)(
    'G1: a reservation is granted exactly when available >= quantity',
    ({ scenario, command, nowMs }) => {
      fc.pre(command.type === 'reserve');
      const c = scenario.counters;
      const q = (command as { quantity: number }).quantity;
      const d = decide(viewOf(scenario), command, nowMs);
      const granted = d.outcome.kind === 'reservation';
      expect(granted).toBe(c.total - c.reserved - c.purchased >= q);
      if (granted)
        expect(d.inserted).toMatchObject([
          {
            status: 'active',
            quantity: q,
            createdAtMs: nowMs,
            expiresAtMs: nowMs + (command as { ttlSeconds: number }).ttlSeconds * 1000,
          },
        ]);
    },
  );

  test.prop([caseArb], params)(
    'G1 G3: an adjustment is accepted exactly when the new total stays within [reserved + purchased, stock limit]',
    ({ scenario, command, nowMs }) => {
      fc.pre(command.type === 'adjust');
      const c = scenario.counters;
      const totalAfter = c.total + (command as { delta: number }).delta;
      const d = decide(viewOf(scenario), command, nowMs);
      expect(d.outcome.kind === 'inventory').toBe(totalAfter >= c.reserved + c.purchased && totalAfter <= stockMax);
    },
  );

  test.prop([caseArb], params)(
    'G6: expire takes an active reservation exactly when expiresAt has passed, and nothing else',
    ({ scenario, command, nowMs }) => {
      fc.pre(command.type === 'expire');
      const r = viewOf(scenario).reservation((command as { reservationId: string }).reservationId);
      const d = decide(viewOf(scenario), command, nowMs);
      const due = r !== undefined && r.status === 'active' && nowMs >= r.expiresAtMs;
      expect(d.changed).toEqual(
        due
          ? [{ id: r.id, from: 'active', to: 'expired', atMs: nowMs, purchasedQuantity: null, expiresAtMs: null }]
          : [],
      );
      if (due) expect(d.events).toMatchObject([{ type: 'expired', source: 'sweeper', lateMs: nowMs - r.expiresAtMs }]);
      else expect(d.outcome).toEqual({ kind: 'noop' });
    },
  );

  test.prop([caseArb], params)(
    'decide is pure: the same input gives the same decision and the view is left as it was',
    ({ scenario, command, nowMs }) => {
      const before = structuredClone(scenario);
      const first: Decision = decide(viewOf(scenario), command, nowMs);
      const second: Decision = decide(viewOf(scenario), command, nowMs);
      expect(second).toEqual(first);
      expect(scenario).toEqual(before);
    },
  );
});

describe('decide over a sequence', () => {
  /** Steps of a product's life; reservation picks are resolved against what exists at that step. */
  const stepArb = fc.oneof(
    fc.record({
      kind: fc.constant('reserve' as const),
      quantity: fc.integer({ min: 1, max: 8 }),
      ttlSeconds: fc.integer({ min: 1, max: 120 }),
    }),
    fc.record({ kind: fc.constantFrom('purchase' as const, 'cancel' as const, 'expire' as const), pick: fc.nat() }),
    fc.record({
      kind: fc.constant('adjust' as const),
      delta: fc.integer({ min: -10, max: 10 }).filter((d) => d !== 0),
    }),
    fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 90_000 }) }),
  );

  test.prop([fc.integer({ min: 0, max: 30 }), fc.array(stepArb, { maxLength: 60 })], {
    numRuns: Math.ceil(numRuns / 4),
  })(
    'G1 G3 G7: folding decisions keeps reserved and purchased equal to the sums over reservations and to the replay of the events',
    (stock, steps) => {
      let nowMs = baseMs;
      const created = productCreatedEvent(stock, 'r', nowMs);
      let counters: Counters = { total: stock, reserved: 0, purchased: 0, version: 1 };
      const reservations = new Map<string, Reservation>();
      let replayed = replay({ total: 0, reserved: 0, purchased: 0 }, created);
      let n = 0;
      for (const step of steps) {
        if (step.kind === 'advance') {
          nowMs += step.ms;
          continue;
        }
        const all = [...reservations.values()];
        let command: Command;
        if (step.kind === 'reserve') {
          command = {
            type: 'reserve',
            reservationId: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
            quantity: step.quantity,
            ttlSeconds: step.ttlSeconds,
            idempotencyKey: `k${n}`,
            requestId: 'r',
          };
        } else if (step.kind === 'adjust') {
          command = { type: 'adjust', delta: step.delta, reason: 'count', idempotencyKey: `a${n++}`, requestId: 'r' };
        } else {
          const r = all[step.pick % Math.max(all.length, 1)];
          if (r === undefined) continue;
          command =
            step.kind === 'expire'
              ? { type: 'expire', reservationId: r.id }
              : { type: step.kind, reservationId: r.id, idempotencyKey: null, requestId: 'r' };
        }
        const view: DecisionView = {
          sku,
          counters,
          activeReservations: all.filter((r) => r.status === 'active').length,
          reservation: (id) => reservations.get(id),
        };
        const d = decide(view, command, nowMs);
        for (const r of d.reservations) reservations.set(r.id, r);
        for (const e of d.events) replayed = replay(replayed, e);
        counters = d.counters;

        const rs = [...reservations.values()];
        expect(withinBounds(counters)).toBe(true);
        expect(counters.reserved).toBe(sum(rs.filter((r) => r.status === 'active')));
        expect(counters.purchased).toBe(sum(rs.filter((r) => r.status === 'purchased')));
        expect(replayed).toEqual(withoutVersion(counters));
      }
    },
  );
});

describe('reservation lifecycle', () => {
  const events: readonly LifecycleEvent[] = [{ type: 'PURCHASE' }, { type: 'CANCEL' }, { type: 'EXPIRE' }];
  const targetOf = { PURCHASE: 'purchased', CANCEL: 'cancelled', EXPIRE: 'expired' } as const;

  test.prop(
    [fc.constantFrom(...statuses), fc.array(fc.constantFrom(...events), { minLength: 1, maxLength: 6 })],
    params,
  )(
    'active -> purchased | cancelled | expired, all three final: any event sequence takes at most one step',
    (start, sequence) => {
      let status: ReservationStatus = start;
      let steps = 0;
      for (const event of sequence) {
        const next = nextStatus(status, event);
        if (status === 'active') {
          expect(next).toBe(targetOf[event.type as keyof typeof targetOf]);
        } else {
          expect(next).toBeNull();
        }
        if (next !== null) {
          status = next;
          steps++;
        }
      }
      expect(steps).toBeLessThanOrEqual(start === 'active' ? 1 : 0);
    },
  );
});
