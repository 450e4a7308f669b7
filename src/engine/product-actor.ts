import PQueue from 'p-queue';
import type { Clock } from './clock.ts';
import {
  assertCounters,
  decideBatch,
  reservationsToLoad,
  type Base,
  type BatchDecision,
  type BatchOutcome,
} from './decide-batch.ts';
import { assert, StorageError } from './errors.ts';
import { fingerprintOf } from './fingerprint.ts';
import { LatencyHistogram } from './latency-histogram.ts';
import { batchesInFlightMax, conflictRetriesMax } from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { CommitResult, Store } from './store.ts';
import type {
  BatchWrite,
  Command,
  CommandResult,
  FailureCode,
  IdempotencyRecord,
  ProductState,
  Reservation,
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

/** What a cart may do with an actor it holds (see `ProductActor.hold`). */
export interface HeldProduct {
  readonly sku: string;
  /** The committed state, loaded if needed; null when the product does not exist. */
  state(): Promise<ProductState | null>;
  /** Drops memory and loads the product again (after another writer was found). */
  reload(): Promise<ProductState | null>;
  base(state: ProductState): Base;
  /**
   * After COMMIT only: the write becomes the actor's state. `commitStartedMs` (performance.now()
   * when the commit was sent) times the commit for the observer, as the actor's own batches are;
   * `operations` is how many operations the write holds (carts of a batch), one by default.
   */
  committed(state: ProductState, write: BatchWrite, commitStartedMs: number, operations?: number): void;
  /** After a commit in doubt: memory is no longer trusted. */
  drop(): void;
  /** Whether anything else waits for this actor's turn: its own commands, a read, another holder. */
  contended(): boolean;
}

/** Reservations of one line are routed by id without a query; a cart's go through the cart. */
function oneLineIds(reservations: Iterable<Reservation>): string[] {
  const ids: string[] = [];
  for (const r of reservations) if (r.lines === 1) ids.push(r.id);
  return ids;
}

/** A batch sent to the database (or waiting on one that was), settled strictly in order. */
interface InFlight {
  readonly batch: readonly Pending[];
  readonly decision: BatchDecision;
  readonly startedMs: number;
  readonly settled: Promise<Settled>;
}

type Settled =
  | { readonly type: 'stored'; readonly result: CommitResult }
  | { readonly type: 'nothing to store' }
  | { readonly type: 'failed'; readonly error: unknown };

/** A batch to decide again from the committed state, with the records its commit found used. */
interface Redo {
  readonly batch: readonly Pending[];
  readonly known: ReadonlyMap<string, IdempotencyRecord>;
}

/**
 * One product's owner. Commands wait in a bounded mailbox; a p-queue of concurrency 1 runs the
 * actor's turns one at a time. A turn decides the waiting commands as one batch and sends it to
 * the database; up to batchesInFlightMax batches are in flight, each decided on top of the one
 * before. A batch is applied to memory and its callers answered only after its COMMIT, and in
 * order (G4, G5). When a batch does not commit, memory is dropped, the batches after it (decided
 * on a state that does not exist) are let settle, and each is decided again from the database.
 */
export class ProductActor {
  /** undefined: not loaded (or dropped after a failure); the next turn loads it. */
  private state: ProductState | undefined;
  private readonly mailbox: Pending[] = [];
  /**
   * The actor's turns: concurrency 1, so decisions, reads and exclusive work never overlap.
   * Created on demand and let go when idle: most live actors are idle, and a p-queue is most of
   * what an idle actor would otherwise cost.
   */
  private queue: PQueue | undefined;
  private drainScheduled = false;
  private readonly inFlight: InFlight[] = [];
  /** Settles the in-flight batches one after another, in the order they were sent. */
  private completions: Promise<void> = Promise.resolve();
  /** Set when an in-flight batch did not commit: nothing new is sent until `redo` is done. */
  private recovering = false;
  private redo: Redo[] = [];

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
    return (
      this.mailbox.length === 0 &&
      !this.drainScheduled &&
      this.queue === undefined &&
      this.inFlight.length === 0 &&
      !this.recovering
    );
  }

  private get turns(): PQueue {
    if (this.queue !== undefined) return this.queue;
    const queue = new PQueue({ concurrency: 1 });
    queue.on('idle', () => {
      if (this.queue === queue && queue.size === 0 && queue.pending === 0) this.queue = undefined;
    });
    this.queue = queue;
    return queue;
  }

  /** Reservation ids this actor holds active (for the registry when it passivates the actor). */
  activeReservationIds(): string[] {
    return this.state === undefined ? [] : [...this.state.active.keys()];
  }

  /** Queues a command; refuses with `overloaded` before any work when the mailbox is full. */
  submit(command: Command): Promise<CommandResult> {
    if (this.mailbox.length >= this.deps.settings.mailboxLengthMax) {
      const result: CommandResult = {
        type: 'failed',
        code: 'overloaded',
        reason: `mailbox of ${this.sku} holds ${this.mailbox.length} commands`,
      };
      this.deps.observer.commandCompleted?.(this.sku, command, result, 0);
      return Promise.resolve(result);
    }
    return new Promise((resolve) => {
      this.mailbox.push({ command, fingerprint: fingerprintOf(command), enqueuedAtMs: performance.now(), resolve });
      this.scheduleDrain();
    });
  }

  /**
   * Runs `read` on the committed state (never a working copy), in the actor's turn, once the
   * batches in flight have settled. Another instance may have written since this actor last
   * committed, so the version is checked first and a stale state reloaded: a read is real-time
   * even without SKU affinity. Null when the product does not exist.
   */
  read<T>(read: (state: ProductState) => T): Promise<T | null> {
    return this.turns.add(async () => {
      await this.settled();
      if (this.state !== undefined) {
        const version = await this.deps.store.productVersion(this.sku);
        if (version !== this.state.counters.version) this.dropState();
      }
      const state = await this.loadedState();
      return state === null ? null : read(state);
    });
  }

  /**
   * Runs `work` in this actor's turn, serialized with its batches, once those in flight have
   * settled. `adopt` hands the actor a state just read from the database (it replaces whatever
   * the actor held).
   */
  exclusive<T>(work: (adopt: (state: ProductState) => void) => Promise<T>): Promise<T> {
    return this.turns.add(async () => {
      await this.settled();
      return work((state) => {
        this.dropState();
        this.adopt(state);
      });
    });
  }

  /**
   * Holds this actor for a cart: `work` runs in the actor's turn once its batches in flight have
   * settled, and nothing else of this product is decided until it returns. A cart holds all its
   * products' actors at once, taken in SKU order (never two carts waiting for each other).
   */
  hold<T>(work: (held: HeldProduct) => Promise<T>): Promise<T> {
    return this.turns.add(async () => {
      await this.settled();
      const held: HeldProduct = {
        sku: this.sku,
        state: () => this.loadedState(),
        reload: async () => {
          this.dropState();
          return this.loadedState();
        },
        base: (state) => this.base(state),
        committed: (state, write, commitStartedMs, operations = 1) => {
          this.apply(state, write);
          this.committedBatch(operations, write, commitStartedMs);
        },
        drop: () => this.dropState(),
        contended: () => this.queue !== undefined && this.queue.size > 0,
      };
      return work(held);
    });
  }

  private adopt(state: ProductState): void {
    assertCounters(state.counters, 'adopted');
    this.state = state;
    this.deps.onReservationsChanged(this.sku, oneLineIds(state.active.values()), []);
  }

  async drained(): Promise<void> {
    while (this.queue !== undefined || this.inFlight.length > 0) {
      await this.queue?.onIdle();
      await this.completions;
    }
  }

  /** Until every batch sent so far has settled (never called with sends still to come). */
  private async settled(): Promise<void> {
    while (this.inFlight.length > 0) await this.completions;
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || this.recovering || this.mailbox.length === 0) return;
    if (this.inFlight.length >= batchesInFlightMax) return;
    this.drainScheduled = true;
    void this.turns.add(() => this.drain());
  }

  private async drain(): Promise<void> {
    try {
      if (this.recovering || this.inFlight.length >= batchesInFlightMax) return;
      const batch = this.mailbox.splice(0, this.deps.settings.batchSizeMax);
      if (batch.length > 0) await this.dispatch(batch);
    } finally {
      this.drainScheduled = false;
      this.lastActivityMs = this.deps.clock.nowMs();
      this.scheduleDrain();
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

  /** The state after every batch in flight, with a lookup through their changes. */
  private base(state: ProductState): Base {
    // A copy of the list: a batch that settles while this one is decided leaves the list, but its
    // changes must stay visible to this decision (they are what it is decided on top of).
    const ahead = this.inFlight.map((f) => f.decision.reservations).reverse();
    const after = this.inFlight.at(-1)?.decision.after ?? {
      counters: state.counters,
      lastHash: state.lastHash,
      activeCount: state.active.size,
    };
    const lookup = (id: string) => {
      for (const changes of ahead) {
        const r = changes.get(id);
        if (r !== undefined) return r;
      }
      return state.active.get(id);
    };
    return { sku: this.sku, ...after, lookup };
  }

  /**
   * Loads the reservations the batch names that memory does not know, then decides the batch
   * (decideBatch). Idempotency keys are not looked up here: the commit checks them in the same
   * round trip and refuses the batch if one was used before (`known`), which is rare.
   */
  private async decideOn(
    base: Base,
    batch: readonly Pending[],
    known: ReadonlyMap<string, IdempotencyRecord>,
  ): Promise<BatchOutcome> {
    const missing = reservationsToLoad(base, batch);
    const loaded = missing.length > 0 ? await this.deps.store.findReservations(this.sku, missing) : [];
    return decideBatch(base, batch, loaded, this.deps.clock.nowMs(), known);
  }

  /** Decides a batch on top of those in flight and sends it, without waiting for its commit. */
  private async dispatch(batch: readonly Pending[]): Promise<void> {
    if (this.inFlight.length === 0) {
      // Nothing in flight: the committed state may first need loading.
      let state: ProductState | null;
      try {
        state = await this.loadedState();
      } catch (error) {
        // Storage: the careful path retries the load and answers 503 if it fails again.
        if (error instanceof StorageError) return this.runBatch(batch);
        this.answerBroken(batch, error);
        return;
      }
      if (state === null) return this.failAll(batch, 'product_not_found', `product ${this.sku} does not exist`);
    }
    const state = this.state;
    assert(state !== undefined, 'a product with batches in flight is loaded');
    let outcome: BatchOutcome;
    try {
      outcome = await this.decideOn(this.base(state), batch, new Map());
    } catch (error) {
      if (error instanceof StorageError) this.redoLater({ batch, known: new Map() });
      else this.broken(batch, error);
      return;
    }
    if (outcome.type === 'stale') {
      this.deps.observer.versionConflict?.(this.sku);
      this.redoLater({ batch, known: new Map() });
      return;
    }
    const { decision } = outcome;
    if (this.recovering) {
      // A batch this one was decided on top of did not commit: what it decided on never existed.
      this.redo.push({ batch, known: new Map() });
      return;
    }
    const write = decision.write;
    const settled: Promise<Settled> =
      write === null
        ? Promise.resolve({ type: 'nothing to store' })
        : this.deps.store.commitBatch(write).then(
            (result) => ({ type: 'stored', result }),
            (error: unknown) => ({ type: 'failed', error }),
          );
    const entry: InFlight = { batch, decision, startedMs: performance.now(), settled };
    this.inFlight.push(entry);
    this.completions = this.completions.then(async () => {
      const settled = await entry.settled;
      try {
        this.complete(entry, settled);
      } catch (error) {
        // Keep the chain alive so the batches after it still settle (a rejected chain would leave
        // their callers hanging).
        this.broken(entry.batch, error);
      }
    });
  }

  /** Runs once per in-flight batch, in the order they were sent. */
  private complete(entry: InFlight, settled: Settled): void {
    const first = this.inFlight.shift();
    assert(first === entry, 'in-flight batches settle in the order they were sent');
    const { batch } = entry;
    switch (settled.type) {
      case 'nothing to store':
        // Its answers were read off the batches before it: right only if all of them committed.
        if (this.recovering) this.redo.push({ batch, known: new Map() });
        else this.answer(batch, entry.decision.results);
        break;
      case 'stored':
        if (settled.result.type === 'committed') {
          this.stored(entry);
        } else {
          this.enterRecovery();
          const known = new Map<string, IdempotencyRecord>();
          this.refused(settled.result, known);
          this.redo.push({ batch, known });
        }
        break;
      case 'failed':
        this.enterRecovery();
        if (settled.error instanceof StorageError) {
          for (const one of this.afterStorageError(batch, settled.error))
            this.redo.push({ batch: one, known: new Map() });
        } else {
          this.broken(batch, settled.error);
        }
        break;
    }
    if (this.recovering && this.inFlight.length === 0) {
      void this.turns.add(() => this.recover());
    } else {
      this.scheduleDrain();
    }
  }

  /** A pipelined batch committed: apply it (unless memory was dropped meanwhile) and answer. */
  private stored(entry: InFlight): void {
    const write = entry.decision.write;
    assert(write !== null, 'a stored batch has a write');
    if (!this.recovering) {
      const state = this.state;
      assert(state !== undefined, 'a product with batches in flight is loaded');
      this.apply(state, write);
    }
    // When recovering, its base was in doubt (a batch before it failed in doubt) and it committed
    // after all: it is durable, so its callers get their answers; memory stays dropped and reloads.
    this.committedBatch(entry.batch.length, write, entry.startedMs);
    this.answer(entry.batch, entry.decision.results);
  }

  /**
   * A commit that did not go through, in either path: a key it found used is replayed by the next
   * attempt; a version or chain-head conflict means another writer: reload and decide again.
   */
  private refused(result: Exclude<CommitResult, { type: 'committed' }>, known: Map<string, IdempotencyRecord>): void {
    if (result.type === 'known') {
      for (const record of result.records) known.set(record.key, record);
    } else {
      this.deps.observer.versionConflict?.(this.sku);
      this.dropState();
    }
  }

  private committedBatch(commands: number, write: BatchWrite, startedMs: number): void {
    this.batchesTotal++;
    this.deps.observer.batchCommitted?.({
      sku: this.sku,
      commands,
      events: write.events.length,
      commitMs: performance.now() - startedMs,
    });
  }

  /**
   * A programming error: a broken invariant, or anything that is neither a decision nor a storage
   * failure. Its batch answers internal_error; nothing of it is applied, memory is distrusted and
   * reloaded from the database (the truth) before the next decision, and the observer is told:
   * metrics count it, the log says it, and the test harnesses fail on it. Never a log line alone.
   */
  private broken(batch: readonly Pending[], error: unknown): void {
    this.failAll(batch, 'internal_error', 'the engine failed');
    if (!this.recovering) {
      this.enterRecovery();
      if (this.inFlight.length === 0) void this.turns.add(() => this.recover());
    }
    this.deps.observer.invariantViolated?.(this.sku, error instanceof Error ? error : new Error(String(error)));
  }

  /** As `broken`, on the careful path: nothing is in flight, so memory is simply dropped. */
  private answerBroken(batch: readonly Pending[], error: unknown): void {
    this.failAll(batch, 'internal_error', 'the engine failed');
    this.dropState();
    this.deps.observer.invariantViolated?.(this.sku, error instanceof Error ? error : new Error(String(error)));
  }

  private enterRecovery(): void {
    this.recovering = true;
    this.dropState();
  }

  private redoLater(redo: Redo): void {
    this.redo.push(redo);
    if (this.recovering) return;
    this.enterRecovery();
    if (this.inFlight.length === 0) void this.turns.add(() => this.recover());
  }

  /** After a batch did not commit and nothing is in flight: each batch again, in order. */
  private async recover(): Promise<void> {
    const redo = this.redo;
    this.redo = [];
    try {
      for (const { batch, known } of redo) await this.runBatch(batch, known);
    } finally {
      this.recovering = false;
      this.scheduleDrain();
    }
  }

  /**
   * After a storage error on a commit the batch is in doubt. Transient: its callers get 503 and may
   * retry under their keys. Otherwise a poisoned command must fail alone: the commands to try one
   * by one are returned.
   */
  private afterStorageError(batch: readonly Pending[], error: StorageError): (readonly Pending[])[] {
    this.deps.observer.storageError?.(this.sku, error);
    if (!error.transient && batch.length > 1) return batch.map((pending) => [pending]);
    this.failAll(batch, error.transient ? 'storage_unavailable' : 'internal_error', error.message);
    return [];
  }

  /**
   * The careful path, one batch at a time with nothing else in flight: decide, persist, apply,
   * acknowledge - retrying on version conflicts.
   */
  private async runBatch(
    batch: readonly Pending[],
    knownBefore: ReadonlyMap<string, IdempotencyRecord> = new Map(),
  ): Promise<void> {
    // Idempotency records the commit found already used; the next attempt replays them.
    const known = new Map(knownBefore);
    for (let attempt = 0; ; attempt++) {
      try {
        const state = await this.loadedState();
        if (state === null) {
          this.failAll(batch, 'product_not_found', `product ${this.sku} does not exist`);
          return;
        }
        const outcome = await this.decideOn(this.base(state), batch, known);
        // A stale view is a conflict found before the commit: both reload and decide again.
        const committed =
          outcome.type === 'stale'
            ? { type: 'conflict' as const }
            : await this.commitNow(state, outcome.decision, batch.length);
        if (committed.type !== 'committed') {
          this.refused(committed, known);
          if (attempt < conflictRetriesMax) continue;
          this.failAll(batch, 'storage_unavailable', `${attempt + 1} attempts refused in a row`);
          return;
        }
        assert(outcome.type === 'decided', 'only a decided batch commits');
        this.answer(batch, outcome.decision.results);
        return;
      } catch (error) {
        if (!(error instanceof StorageError)) {
          this.answerBroken(batch, error);
          return;
        }
        // The commit may or may not have happened: forget what we hold and reload next time.
        this.dropState();
        for (const one of this.afterStorageError(batch, error)) await this.runBatch(one);
        return;
      }
    }
  }

  /** Commits a decision with nothing else in flight and applies it; a batch without writes is done. */
  private async commitNow(state: ProductState, decision: BatchDecision, commands: number): Promise<CommitResult> {
    const { write } = decision;
    if (write === null) return { type: 'committed' };
    const startedMs = performance.now();
    const committed = await this.deps.store.commitBatch(write);
    if (committed.type !== 'committed') return committed;
    this.apply(state, write);
    this.committedBatch(commands, write, startedMs);
    return committed;
  }

  /** After COMMIT only: the batch becomes the actor's committed state. */
  private apply(state: ProductState, write: BatchWrite): void {
    const before = state.counters;
    assert(
      before.version === write.versionBefore && state.lastHash === write.hashBefore,
      'a batch applies onto the state it was decided against',
    );
    state.counters = write.counters;
    const last = write.events.at(-1);
    if (last !== undefined) state.lastHash = last.hash;
    for (const r of write.inserted) state.active.set(r.id, r);
    const closed: string[] = [];
    for (const c of write.changed) {
      const r = state.active.get(c.id);
      assert(r !== undefined, `a changed reservation ${c.id} was active`);
      if (c.to === 'active') {
        // An extension: still active, with its new expiry.
        assert(c.expiresAtMs !== null, 'an extension sets the expiry');
        state.active.set(c.id, { ...r, expiresAtMs: c.expiresAtMs });
      } else {
        state.active.delete(c.id);
        closed.push(c.id);
      }
    }
    assertCounters(state.counters, 'applied');
    assert(state.counters.version === before.version + write.events.length, 'one version per event');
    this.deps.onReservationsChanged(this.sku, oneLineIds(write.inserted), closed);
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
