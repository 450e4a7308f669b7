import { createHash } from 'node:crypto';
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { decideBatch, type Base, type BatchCommand, type BatchDecision } from '../../src/engine/decide-batch.ts';
import { eventHash, genesisHash } from '../../src/engine/event-hash.ts';
import { fingerprintOf, idempotencyKeyOf } from '../../src/engine/fingerprint.ts';
import { stockAfter, type Stock } from '../../src/engine/replay.ts';
import type { Command, Counters, IdempotencyRecord, Outcome, Reservation } from '../../src/engine/types.ts';

// Pure properties of decideBatch over whole batches: no database, so many runs.
// PROPERTY_RUNS scales them with the other property files (x20 here, 1000 by default).

const numRuns = process.env.PROPERTY_RUNS === undefined ? 1000 : Number(process.env.PROPERTY_RUNS) * 20;
const params = { numRuns };

const sku = 'P';
const baseMs = Date.parse('2026-03-01T00:00:00Z');
const uuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
/** Reservations memory holds (active), those only the database holds (final), and one nobody has. */
const activeIds = [1, 2, 3, 4].map(uuid);
const finalIds = [0x11, 0x12].map(uuid);
const unknownId = uuid(0xee);
/** Few keys, so that a batch often uses one twice: with the same payload or with another. */
const keyPool = ['k0', 'k1', 'k2'];
/** What a stored record says: no keyed command decides `noop`, so a replay of it is recognisable. */
const storedOutcome: Outcome = { kind: 'noop' };

// ---------------------------------------------------------------------------------------------
// Arbitraries: a valid base, a batch about it, and the keys the database already holds

interface Case {
  readonly base: Base;
  readonly active: readonly Reservation[];
  readonly loaded: readonly Reservation[];
  readonly batch: readonly BatchCommand[];
  readonly known: ReadonlyMap<string, IdempotencyRecord>;
  readonly nowMs: number;
}

const activeArb = (id: string): fc.Arbitrary<Reservation> =>
  fc
    .record({ quantity: fc.integer({ min: 1, max: 10 }), ttlSeconds: fc.integer({ min: 1, max: 600 }) })
    .map(({ quantity, ttlSeconds }) => ({
      id,
      sku,
      quantity,
      status: 'active' as const,
      createdAtMs: baseMs,
      expiresAtMs: baseMs + ttlSeconds * 1000,
      finishedAtMs: null,
      line: 0,
      lines: 1,
      purchasedQuantity: null,
    }));

const finalArb = (id: string): fc.Arbitrary<Reservation> =>
  fc
    .record({ quantity: fc.integer({ min: 1, max: 10 }), status: fc.constantFrom('purchased', 'cancelled', 'expired') })
    .map(({ quantity, status }) => ({
      id,
      sku,
      quantity,
      status,
      createdAtMs: baseMs,
      expiresAtMs: baseMs + 60_000,
      finishedAtMs: baseMs + 1000,
      line: 0,
      lines: 1,
      purchasedQuantity: status === 'purchased' ? quantity : null,
    }));

/** A chain head as a product's newest event would have it. */
const sha256Of = (n: number): string => createHash('sha256').update(`${n}`).digest('hex');

/** A base within G1 and G3 whose reserved counter is the sum of its active reservations. */
const baseArb = fc
  .record({
    active: fc.subarray(activeIds).chain((ids) => fc.tuple(...ids.map(activeArb))),
    loaded: fc.subarray(finalIds).chain((ids) => fc.tuple(...ids.map(finalArb))),
    purchased: fc.integer({ min: 0, max: 40 }),
    available: fc.integer({ min: 0, max: 30 }),
    version: fc.integer({ min: 1, max: 1000 }),
    lastHash: fc.oneof(fc.constant(genesisHash), fc.nat().map(sha256Of)),
  })
  .map(({ active, loaded, purchased, available, version, lastHash }) => {
    const reserved = sum(active);
    const byId = new Map(active.map((r) => [r.id, r]));
    const base: Base = {
      sku,
      counters: { total: reserved + purchased + available, reserved, purchased, version },
      lastHash,
      activeCount: active.length,
      lookup: (id) => byId.get(id),
    };
    return { base, active, loaded };
  });

/** One command before its reservation pick and key are resolved against the rest of the batch. */
const stepArb = fc.record({
  type: fc.constantFrom('reserve', 'purchase', 'cancel', 'expire', 'adjust'),
  quantity: fc.integer({ min: 1, max: 6 }),
  ttlSeconds: fc.constantFrom(1, 60),
  delta: fc.integer({ min: -15, max: 15 }).filter((d) => d !== 0),
  /** A pooled key; null gives a reserve or adjust a key of its own, and a purchase or cancel none. */
  key: fc.option(fc.constantFrom(...keyPool), { freq: 3 }),
  pick: fc.nat(),
  /** A retry: the payload and key of an earlier command of the batch (a new request id). */
  retryOf: fc.option(fc.nat(), { freq: 4 }),
});
type Step = typeof stepArb extends fc.Arbitrary<infer T> ? T : never;

/** Command i of a batch; `origin` is the index whose payload and key it carries (itself unless a retry). */
function commandOf(step: Step, i: number, origin: number, targets: readonly string[]): Command {
  const reservationId = targets[step.pick % targets.length]!;
  const requestId = `r${i}`;
  switch (step.type) {
    case 'reserve':
      return {
        type: 'reserve',
        reservationId: uuid(0x100 + i),
        quantity: step.quantity,
        ttlSeconds: step.ttlSeconds,
        idempotencyKey: step.key ?? `u${origin}`,
        requestId,
      };
    case 'adjust':
      return {
        type: 'adjust',
        delta: step.delta,
        reason: 'count',
        idempotencyKey: step.key ?? `u${origin}`,
        requestId,
      };
    case 'purchase':
    case 'cancel':
      return { type: step.type, reservationId, idempotencyKey: step.key, requestId };
    case 'expire':
      return { type: 'expire', reservationId };
    default: {
      const unreachable: never = step.type;
      return unreachable;
    }
  }
}

/** Records the database holds for pooled keys: for a payload of the batch (a retry), or for another. */
const knownArb = fc.array(fc.record({ key: fc.constantFrom(...keyPool), samePayload: fc.boolean(), pick: fc.nat() }), {
  maxLength: 2,
});

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    start: baseArb,
    steps: fc.array(stepArb, { minLength: 1, maxLength: 24 }),
    known: knownArb,
    nowMs: fc.integer({ min: baseMs, max: baseMs + 700_000 }),
  })
  .map(({ start: { base, active, loaded }, steps, known, nowMs }) => {
    const origins = steps.map((s, i) => (s.retryOf === null || i === 0 ? i : s.retryOf % i));
    // A purchase may name a reservation reserved earlier in the batch, later in it, or nowhere.
    const reservedInBatch = origins.flatMap((o, i) => (steps[o]!.type === 'reserve' ? [uuid(0x100 + i)] : []));
    const targets = [...activeIds, ...finalIds, ...reservedInBatch, unknownId];
    const batch = origins.map((origin, i) => {
      const command = commandOf(steps[origin]!, i, origin, targets);
      return { command, fingerprint: fingerprintOf(command) };
    });
    const records = new Map<string, IdempotencyRecord>();
    for (const { key, samePayload, pick } of known) {
      const uses = batch.filter(({ command }) => idempotencyKeyOf(command) === key);
      const fingerprint =
        samePayload && uses.length > 0 ? uses[pick % uses.length]!.fingerprint : 'adjust:999:"elsewhere"';
      records.set(key, { key, fingerprint, outcome: storedOutcome });
    }
    return { base, active, loaded, batch, known: records, nowMs };
  });

// ---------------------------------------------------------------------------------------------

function sum(rs: readonly Reservation[]): number {
  return rs.reduce((n, r) => n + r.quantity, 0);
}

function withinBounds(c: Stock): boolean {
  return c.total >= 0 && c.reserved >= 0 && c.purchased >= 0 && c.reserved + c.purchased <= c.total;
}

const stockOf = ({ total, reserved, purchased }: Stock): Stock => ({ total, reserved, purchased });

function decided(c: Case): BatchDecision {
  const outcome = decideBatch(c.base, c.batch, c.loaded, c.nowMs, c.known);
  if (outcome.type !== 'decided') throw new Error(`a batch with no active loaded reservation was ${outcome.type}`);
  return outcome.decision;
}

/** The counters the batch leaves: its write's, or the base's when it writes nothing. */
function countersAfter(c: Case, d: BatchDecision): Counters {
  return d.write?.counters ?? c.base.counters;
}

// ---------------------------------------------------------------------------------------------

describe('decideBatch', () => {
  test.prop([caseArb], params)("G7: replaying the write's events from the base counters gives its counters", (c) => {
    const d = decided(c);
    const events = d.write?.events ?? [];
    let stock = stockOf(c.base.counters);
    for (const e of events) {
      const next = stockAfter(stock, e);
      if (next === null) throw new Error(`event ${e.seq} (${e.type}) lacks the field its type needs`);
      stock = next;
      expect(stockOf(e)).toEqual(stock);
    }
    expect(stockOf(countersAfter(c, d))).toEqual(stock);
    expect(countersAfter(c, d).version).toBe(c.base.counters.version + events.length);
    expect(d.after.counters).toEqual(countersAfter(c, d));
  });

  test.prop([caseArb], params)('G1 G3: no counter is negative and reserved + purchased never exceed total', (c) => {
    const d = decided(c);
    expect(withinBounds(countersAfter(c, d))).toBe(true);
    for (const e of d.write?.events ?? []) expect(withinBounds(e)).toBe(true);
  });

  test.prop([caseArb], params)('G1: reserved after is the sum over the active reservations, kept or new', (c) => {
    const d = decided(c);
    const all = new Map(c.active.map((r) => [r.id, r]));
    for (const r of d.write?.inserted ?? []) all.set(r.id, r);
    for (const [id, r] of d.reservations) all.set(id, r);
    const active = [...all.values()].filter((r) => r.status === 'active');
    expect(d.after.counters.reserved).toBe(sum(active));
    expect(d.after.activeCount).toBe(active.length);
    // Only an active reservation ever changes: a final one loaded from the database stays as it is.
    for (const change of d.write?.changed ?? []) expect(change.from).toBe('active');
    for (const r of c.loaded) expect(d.reservations.has(r.id)).toBe(false);
  });

  const replayOrRefuse =
    "G2: one result per command; a key's later uses replay its first outcome or are idempotency_key_reused";
  test.prop([caseArb], params)(replayOrRefuse, (c) => {
    const d = decided(c);
    expect(d.results).toHaveLength(c.batch.length);
    const first = new Map<string, { fingerprint: string; outcome: Outcome }>(c.known);
    const rememberedInBatch: string[] = [];
    c.batch.forEach(({ command, fingerprint }, i) => {
      const result = d.results[i]!;
      const key = idempotencyKeyOf(command);
      const prior = key === null ? undefined : first.get(key);
      if (prior !== undefined) {
        if (prior.fingerprint === fingerprint) {
          expect(result).toEqual({ type: 'done', outcome: prior.outcome, replayed: true });
        } else {
          expect(result).toMatchObject({ type: 'failed', code: 'idempotency_key_reused' });
        }
        return;
      }
      // A first use is decided, unless its reservation exists nowhere (then nothing is recorded).
      if (result.type === 'failed') {
        expect(result.code).toBe('reservation_not_found');
        return;
      }
      expect(result.replayed).toBe(false);
      if (key !== null) {
        first.set(key, { fingerprint, outcome: result.outcome });
        rememberedInBatch.push(key);
      }
    });
    // Each key is written once, by its first decided use; keys the database holds are not written again.
    expect((d.write?.idempotency ?? []).map((r) => r.key)).toEqual(rememberedInBatch);
  });

  test.prop([caseArb], params)("G7: each event hashes onto the one before it, the first onto the base's head", (c) => {
    const d = decided(c);
    if (d.write !== null) {
      expect(d.write.versionBefore).toBe(c.base.counters.version);
      expect(d.write.hashBefore).toBe(c.base.lastHash);
    }
    let previous = c.base.lastHash;
    (d.write?.events ?? []).forEach((e, i) => {
      expect(e.sku).toBe(sku);
      expect(e.seq).toBe(c.base.counters.version + i + 1);
      expect(e.hash).toBe(eventHash(previous, sku, e));
      previous = e.hash;
    });
    expect(d.after.lastHash).toBe(previous);
  });
});
