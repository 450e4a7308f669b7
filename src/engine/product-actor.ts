import PQueue from 'p-queue';
import type { Clock } from './clock.ts';
import { decide, type DecisionView } from './decide.ts';
import { assert, StorageError } from './errors.ts';
import { chainEvents } from './event-hash.ts';
import { fingerprintOf, idempotencyKeyOf, reservationIdOf } from './fingerprint.ts';
import { LatencyHistogram } from './latency-histogram.ts';
import { conflictRetriesMax } from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { Store } from './store.ts';
import type {
  BatchWrite,
  Command,
  CommandResult,
  Counters,
  EventDraft,
  FailureCode,
  IdempotencyRecord,
  ProductState,
  Reservation,
  StatusChange,
} from './types.ts';

export interface ActorSettings {
  readonly batchSizeMax: number;
  readonly mailboxLengthMax: number;
}

export interface ActorDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly settings: ActorSettings;
  readonly observer: EngineObserver;
  /** Told which reservation ids this product now owns or no longer holds active. */
  readonly onReservationsChanged: (sku: string, added: readonly string[], removed: readonly string[]) => void;
}

interface Pending {
  readonly command: Command;
  readonly fingerprint: string;
  readonly enqueuedAtMs: number;
  readonly resolve: (result: CommandResult) => void;
}

/** A batch decided against the actor's state: what to write and what each caller gets. */
interface Plan {
  readonly write: BatchWrite | null;
  readonly results: CommandResult[];
}

/**
 * One product's owner. Commands wait in a bounded mailbox; a p-queue of concurrency 1 runs one
 * batch at a time: decide every waiting command on a working copy, commit the batch in one
 * transaction, and only after COMMIT apply it to memory and answer the callers (G4, G5).
 */
export class ProductActor {
  /** undefined: not loaded (or dropped after a storage error); the next turn loads it. */
  private state: ProductState | undefined;
  private readonly mailbox: Pending[] = [];
  private readonly turns = new PQueue({ concurrency: 1 });
  private drainScheduled = false;

  commandsTotal = 0;
  batchesTotal = 0;
  lastActivityMs: number;
  readonly latency = new LatencyHistogram();

  constructor(
    readonly sku: string,
    private readonly deps: ActorDeps,
  ) {
    this.lastActivityMs = deps.clock.nowMs();
  }

  get queueDepth(): number {
    return this.mailbox.length;
  }

  get idle(): boolean {
    return this.mailbox.length === 0 && !this.drainScheduled && this.turns.size === 0 && this.turns.pending === 0;
  }

  /** Reservation ids this actor holds active (for the registry when it passivates the actor). */
  activeReservationIds(): string[] {
    return this.state === undefined ? [] : [...this.state.active.keys()];
  }

  /** Queues a command; refuses with `overloaded` before any work when the mailbox is full. */
  submit(command: Command): Promise<CommandResult> {
    if (this.mailbox.length >= this.deps.settings.mailboxLengthMax) {
      const result: CommandResult = { type: 'failed', code: 'overloaded', reason: `mailbox of ${this.sku} holds ${this.mailbox.length} commands` };
      this.deps.observer.commandCompleted?.(this.sku, command, result, 0);
      return Promise.resolve(result);
    }
    return new Promise((resolve) => {
      this.mailbox.push({ command, fingerprint: fingerprintOf(command), enqueuedAtMs: performance.now(), resolve });
      this.scheduleDrain();
    });
  }

  /**
   * Runs `read` on the committed state (never a working copy), in the actor's turn. Another
   * instance may have written since this actor last committed, so the version is checked first
   * and a stale state reloaded: a read is real-time even without SKU affinity. Null when the
   * product does not exist.
   */
  read<T>(read: (state: ProductState) => T): Promise<T | null> {
    return this.turns.add(async () => {
      if (this.state !== undefined) {
        const version = await this.deps.store.productVersion(this.sku);
        if (version !== this.state.counters.version) this.dropState();
      }
      const state = await this.loadedState();
      return state === null ? null : read(state);
    });
  }

  /**
   * Runs `work` in this actor's turn, serialized with its batches. `adopt` hands the actor a
   * state just read from the database (it replaces whatever the actor held).
   */
  exclusive<T>(work: (adopt: (state: ProductState) => void) => Promise<T>): Promise<T> {
    return this.turns.add(() => work((state) => {
      this.dropState();
      this.adopt(state);
    }));
  }

  private adopt(state: ProductState): void {
    assertCounters(state.counters, 'adopted');
    this.state = state;
    this.deps.onReservationsChanged(this.sku, [...state.active.keys()], []);
  }

  async drained(): Promise<void> {
    await this.turns.onIdle();
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    void this.turns.add(() => this.drain());
  }

  private async drain(): Promise<void> {
    const batch = this.mailbox.splice(0, this.deps.settings.batchSizeMax);
    try {
      await this.runBatch(batch);
    } finally {
      this.drainScheduled = false;
      this.lastActivityMs = this.deps.clock.nowMs();
      if (this.mailbox.length > 0) this.scheduleDrain();
    }
  }

  private async loadedState(): Promise<ProductState | null> {
    if (this.state !== undefined) return this.state;
    const loaded = await this.deps.store.loadProduct(this.sku);
    // Absence is not cached: the product may be created a moment later.
    if (loaded === null) return null;
    this.adopt(loaded);
    return loaded;
  }

  private dropState(): void {
    this.state = undefined;
  }

  /** Decide, persist, apply, acknowledge - retrying on version conflicts. */
  private async runBatch(batch: readonly Pending[]): Promise<void> {
    // Idempotency records the commit found already used; the next attempt replays them.
    const known = new Map<string, IdempotencyRecord>();
    for (let attempt = 0; ; attempt++) {
      try {
        const state = await this.loadedState();
        if (state === null) {
          this.failAll(batch, 'product_not_found', `product ${this.sku} does not exist`);
          return;
        }
        const nowMs = this.deps.clock.nowMs();
        const plan = await this.plan(batch, state, nowMs, known);
        if (plan.write !== null) {
          const startedMs = performance.now();
          const committed = await this.deps.store.commitBatch(plan.write);
          if (committed.type !== 'committed') {
            if (committed.type === 'known') {
              for (const record of committed.records) known.set(record.key, record);
            } else {
              this.deps.observer.versionConflict?.(this.sku);
              this.dropState();
            }
            if (attempt < conflictRetriesMax) continue;
            this.failAll(batch, 'storage_unavailable', `${attempt + 1} attempts refused in a row`);
            return;
          }
          this.apply(state, plan.write);
          this.batchesTotal++;
          this.deps.observer.batchCommitted?.({
            sku: this.sku,
            commands: batch.length,
            events: plan.write.events.length,
            commitMs: performance.now() - startedMs,
          });
        }
        this.answer(batch, plan.results);
        return;
      } catch (error) {
        if (!(error instanceof StorageError)) {
          this.failAll(batch, 'internal_error', 'the engine failed');
          throw error;
        }
        // The commit may or may not have happened: forget what we hold and reload next time.
        this.dropState();
        this.deps.observer.storageError?.(this.sku, error);
        if (!error.transient && batch.length > 1) {
          for (const pending of batch) await this.runBatch([pending]);
          return;
        }
        const code: FailureCode = error.transient ? 'storage_unavailable' : 'internal_error';
        this.failAll(batch, code, error.message);
        return;
      }
    }
  }

  /**
   * Loads the reservations the batch names that are not active in memory, then decides each
   * command in order. Idempotency keys are not looked up here: the commit checks them in the same
   * round trip and refuses the batch if one was used before (`known`), which is rare.
   */
  private async plan(batch: readonly Pending[], state: ProductState, nowMs: number, known: ReadonlyMap<string, IdempotencyRecord>): Promise<Plan> {
    const missing = new Set<string>();
    for (const { command } of batch) {
      const id = reservationIdOf(command);
      if (id !== null && !state.active.has(id)) missing.add(id);
    }
    const loaded = missing.size > 0 ? await this.deps.store.findReservations(this.sku, [...missing]) : [];
    const records = new Map(known);

    const overlay = new Map<string, Reservation>(loaded.map((r) => [r.id, r]));
    let counters: Counters = state.counters;
    let activeCount = state.active.size;
    const view: DecisionView = {
      sku: this.sku,
      get counters() {
        return counters;
      },
      get activeReservations() {
        return activeCount;
      },
      reservation: (id) => overlay.get(id) ?? state.active.get(id),
    };

    const results: CommandResult[] = [];
    const drafts: EventDraft[] = [];
    const inserted: Reservation[] = [];
    const changed: StatusChange[] = [];
    const remembered: IdempotencyRecord[] = [];
    for (const { command, fingerprint } of batch) {
      const key = idempotencyKeyOf(command);
      const prior = key === null ? undefined : records.get(key);
      if (prior !== undefined) {
        // A retry, or a duplicate that was in flight with its original in this very batch.
        results.push(prior.fingerprint === fingerprint
          ? { type: 'done', outcome: prior.outcome, replayed: true }
          : { type: 'failed', code: 'idempotency_key_reused', reason: `key was used for ${prior.fingerprint}` });
        continue;
      }
      const reservationId = reservationIdOf(command);
      if (reservationId !== null && view.reservation(reservationId) === undefined) {
        results.push({ type: 'failed', code: 'reservation_not_found', reason: `no reservation ${reservationId} on ${this.sku}` });
        continue;
      }
      const decision = decide(view, command, nowMs);
      counters = decision.counters;
      activeCount += decision.inserted.length - decision.changed.length;
      for (const r of decision.reservations) overlay.set(r.id, r);
      drafts.push(...decision.events);
      inserted.push(...decision.inserted);
      changed.push(...decision.changed);
      results.push({ type: 'done', outcome: decision.outcome, replayed: false });
      if (key !== null) {
        const record: IdempotencyRecord = { key, fingerprint, outcome: decision.outcome };
        records.set(key, record);
        remembered.push(record);
      }
    }

    if (drafts.length === 0 && remembered.length === 0) return { write: null, results };
    assert(counters.version === state.counters.version + drafts.length, 'one version per event');
    assertCounters(counters, 'decided');
    return {
      write: {
        sku: this.sku,
        versionBefore: state.counters.version,
        counters,
        atMs: nowMs,
        inserted,
        changed,
        events: chainEvents(state.lastHash, this.sku, drafts),
        idempotency: remembered,
      },
      results,
    };
  }

  /** After COMMIT only: the batch becomes the actor's committed state. */
  private apply(state: ProductState, write: BatchWrite): void {
    const before = state.counters;
    state.counters = write.counters;
    const last = write.events.at(-1);
    if (last !== undefined) state.lastHash = last.hash;
    for (const r of write.inserted) state.active.set(r.id, r);
    for (const c of write.changed) state.active.delete(c.id);
    assertCounters(state.counters, 'applied');
    assert(state.counters.version === before.version + write.events.length, 'one version per event');
    this.deps.onReservationsChanged(this.sku, write.inserted.map((r) => r.id), write.changed.map((c) => c.id));
  }

  private answer(batch: readonly Pending[], results: readonly CommandResult[]): void {
    const nowMs = performance.now();
    for (let i = 0; i < batch.length; i++) {
      const pending = batch[i]!;
      const result = results[i]!;
      this.settle(pending, result, nowMs);
    }
  }

  private failAll(batch: readonly Pending[], code: FailureCode, reason: string): void {
    const nowMs = performance.now();
    for (const pending of batch) this.settle(pending, { type: 'failed', code, reason }, nowMs);
  }

  private settle(pending: Pending, result: CommandResult, nowMs: number): void {
    const latencyMs = nowMs - pending.enqueuedAtMs;
    this.commandsTotal++;
    this.latency.record(latencyMs);
    this.deps.observer.commandCompleted?.(this.sku, pending.command, result, latencyMs);
    pending.resolve(result);
  }
}

/** G1 and G3, asserted in memory before every commit and after every apply and load. */
function assertCounters(c: Counters, when: string): void {
  assert(Number.isSafeInteger(c.total) && c.total >= 0, `G3: total >= 0 (${when})`);
  assert(Number.isSafeInteger(c.reserved) && c.reserved >= 0, `G3: reserved >= 0 (${when})`);
  assert(Number.isSafeInteger(c.purchased) && c.purchased >= 0, `G3: purchased >= 0 (${when})`);
  assert(c.reserved + c.purchased <= c.total, `G1: reserved + purchased <= total (${when})`);
}
