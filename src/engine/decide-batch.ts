import { decide, type DecisionView } from './decide.ts';
import { assert } from './errors.ts';
import { chainEvents } from './event-hash.ts';
import { idempotencyKeyOf, reservationIdOf } from './fingerprint.ts';
import type {
  BatchWrite,
  Command,
  CommandResult,
  Counters,
  EventDraft,
  IdempotencyRecord,
  Reservation,
  StatusChange,
} from './types.ts';

/**
 * What a batch is decided against: the committed state, or the state after the batches still in
 * flight (pipelining). Reservations are looked up through those batches' changes first.
 */
export interface Base {
  readonly sku: string;
  readonly counters: Counters;
  readonly lastHash: string;
  readonly activeCount: number;
  /** A reservation of this product as memory knows it: committed or changed by a batch in flight. */
  readonly lookup: (id: string) => Reservation | undefined;
}

export interface BatchCommand {
  readonly command: Command;
  readonly fingerprint: string;
}

/** A batch decided: what to write (null when nothing), what each caller gets, what it leaves. */
export interface BatchDecision {
  readonly write: BatchWrite | null;
  /** One per command, in the batch's order. */
  readonly results: readonly CommandResult[];
  /** The product as it is after this batch, should it commit. */
  readonly after: Omit<Base, 'sku' | 'lookup'>;
  /** Reservations this batch creates or changes, as they are after it. */
  readonly reservations: ReadonlyMap<string, Reservation>;
}

export type BatchOutcome =
  | { readonly type: 'decided'; readonly decision: BatchDecision }
  /**
   * The database holds an active reservation that memory does not know. Memory holds every
   * active reservation of its product, so another instance wrote after it loaded: its counters
   * are stale (G1, G3). A version conflict found before the commit: reload, decide again.
   */
  | { readonly type: 'stale'; readonly reservationId: string };

/** The reservation ids a batch names that memory does not know: they must be loaded first. */
export function reservationsToLoad(base: Base, batch: readonly BatchCommand[]): string[] {
  const missing = new Set<string>();
  for (const { command } of batch) {
    const id = reservationIdOf(command);
    if (id !== null && base.lookup(id) === undefined) missing.add(id);
  }
  return [...missing];
}

/**
 * Decides a batch of one product's commands, in order, each on top of the ones before it. Pure:
 * no I/O, no clock. Per command, in this order: a key known to this batch or to the database
 * (`known`, found used by a commit) replays or is refused as reused; an unknown reservation is
 * reservation_not_found; anything else is `decide`d. The events are chained onto `base.lastHash`.
 */
export function decideBatch(
  base: Base,
  batch: readonly BatchCommand[],
  loaded: readonly Reservation[],
  nowMs: number,
  known: ReadonlyMap<string, IdempotencyRecord>,
): BatchOutcome {
  const unknownActive = loaded.find((r) => r.status === 'active');
  if (unknownActive !== undefined) return { type: 'stale', reservationId: unknownActive.id };
  const fromDatabase = new Map(loaded.map((r) => [r.id, r]));
  const work = new Working(base, fromDatabase, known);
  for (const { command, fingerprint } of batch) work.take(command, fingerprint, nowMs);
  return { type: 'decided', decision: work.finish(base, nowMs) };
}

/** The running state of one batch's decision: counters, changes, and what to write. */
class Working implements DecisionView {
  counters: Counters;
  activeReservations: number;
  readonly changes = new Map<string, Reservation>();
  readonly results: CommandResult[] = [];
  readonly drafts: EventDraft[] = [];
  readonly inserted: Reservation[] = [];
  readonly changed: StatusChange[] = [];
  /** Where each reservation's change is in `changed`: a row is changed once per batch. */
  private readonly changedAt = new Map<string, number>();
  readonly remembered: IdempotencyRecord[] = [];
  private readonly records: Map<string, IdempotencyRecord>;

  constructor(
    private readonly base: Base,
    private readonly fromDatabase: ReadonlyMap<string, Reservation>,
    known: ReadonlyMap<string, IdempotencyRecord>,
  ) {
    this.counters = base.counters;
    this.activeReservations = base.activeCount;
    this.records = new Map(known);
  }

  get sku(): string {
    return this.base.sku;
  }

  reservation(id: string): Reservation | undefined {
    return this.changes.get(id) ?? this.base.lookup(id) ?? this.fromDatabase.get(id);
  }

  take(command: Command, fingerprint: string, nowMs: number): void {
    const key = idempotencyKeyOf(command);
    const prior = key === null ? undefined : this.records.get(key);
    if (prior !== undefined) {
      // A retry, or a duplicate that was in flight with its original in this very batch.
      this.results.push(
        prior.fingerprint === fingerprint
          ? { type: 'done', outcome: prior.outcome, replayed: true }
          : { type: 'failed', code: 'idempotency_key_reused', reason: `key was used for ${prior.fingerprint}` },
      );
      return;
    }
    const reservationId = reservationIdOf(command);
    if (reservationId !== null && this.reservation(reservationId) === undefined) {
      this.results.push({
        type: 'failed',
        code: 'reservation_not_found',
        reason: `no reservation ${reservationId} on ${this.sku}`,
      });
      return;
    }
    const decision = decide(this, command, nowMs);
    this.counters = decision.counters;
    this.activeReservations += decision.inserted.length - decision.changed.filter((c) => c.to !== 'active').length;
    for (const r of decision.reservations) this.changes.set(r.id, r);
    this.drafts.push(...decision.events);
    this.inserted.push(...decision.inserted);
    for (const c of decision.changed) this.change(c);
    this.results.push({ type: 'done', outcome: decision.outcome, replayed: false });
    if (key !== null) {
      const record: IdempotencyRecord = { key, fingerprint, outcome: decision.outcome };
      this.records.set(key, record);
      this.remembered.push(record);
    }
  }

  /**
   * Several commands of a batch may change one reservation (two extensions, an extension and a
   * purchase): the commit updates its row once, from the status it had, so they are one change.
   */
  private change(c: StatusChange): void {
    const at = this.changedAt.get(c.id);
    if (at === undefined) {
      this.changedAt.set(c.id, this.changed.length);
      this.changed.push(c);
    } else {
      this.changed[at] = mergedChange(this.changed[at], c);
    }
  }

  finish(base: Base, nowMs: number): BatchDecision {
    const { counters, drafts, remembered, changes: reservations, results } = this;
    if (drafts.length === 0 && remembered.length === 0) {
      return { write: null, results, after: base, reservations };
    }
    assert(counters.version === base.counters.version + drafts.length, 'one version per event');
    assertCounters(counters, 'decided');
    const events = chainEvents(base.lastHash, base.sku, drafts);
    const write: BatchWrite = {
      sku: base.sku,
      versionBefore: base.counters.version,
      hashBefore: base.lastHash,
      counters,
      atMs: nowMs,
      inserted: this.inserted,
      changed: this.changed,
      events,
      idempotency: remembered,
    };
    const after = { counters, lastHash: events.at(-1)?.hash ?? base.lastHash, activeCount: this.activeReservations };
    return { write, results, after, reservations };
  }
}

/** G1 and G3, asserted in memory before every commit and after every apply and load. */
export function assertCounters(c: Counters, when: string): void {
  assert(Number.isSafeInteger(c.total) && c.total >= 0, `G3: total >= 0 (${when})`);
  assert(Number.isSafeInteger(c.reserved) && c.reserved >= 0, `G3: reserved >= 0 (${when})`);
  assert(Number.isSafeInteger(c.purchased) && c.purchased >= 0, `G3: purchased >= 0 (${when})`);
  assert(c.reserved + c.purchased <= c.total, `G1: reserved + purchased <= total (${when})`);
}

/**
 * Two changes of one reservation line in one transaction are one change: from where the first
 * found it to where the second leaves it (the commit updates a row once, from the status it had).
 * An extension's expiry stays unless the later change moves it again.
 */
export function mergedChange(earlier: StatusChange | undefined, later: StatusChange): StatusChange {
  if (earlier === undefined) return later;
  assert(earlier.to === later.from, 'a later change starts where the earlier one left the line');
  return { ...later, from: earlier.from, expiresAtMs: later.expiresAtMs ?? earlier.expiresAtMs };
}
