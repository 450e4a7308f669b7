import type { Clock } from './clock.ts';
import type { Base } from './decide-batch.ts';
import { decideCartBatch, replayOrReused, type CartKey, type CartToDecide } from './decide-cart-batch.ts';
import type { CartOp } from './decide-cart.ts';
import { assert, StorageError } from './errors.ts';
import { holdAll } from './hold-all.ts';
import {
  cartBatchConflictsMax,
  cartBatchLinesMax,
  cartBatchSizeMax,
  cartsWaitingMax,
  conflictRetriesMax,
} from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { HeldProduct, ProductActor } from './product-actor.ts';
import type { Store } from './store.ts';
import type { CommandResult, ProductState, Reservation } from './types.ts';

export interface CartLaneDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly observer: EngineObserver;
  /** The product's actor; null when its shard is full of busy actors. */
  readonly actorFor: (sku: string) => ProductActor | null;
}

/** A cart operation waiting for the lane, and how to answer it. */
interface Waiting {
  readonly op: CartOp;
  /** Its products, sorted and distinct. */
  readonly skus: readonly string[];
  readonly key: CartKey | null;
  readonly resolve: (result: CommandResult) => void;
}

/** What one attempt at deciding and committing a batch came to. */
type Attempt =
  /** Every cart of the batch is answered. */
  | { readonly type: 'answered' }
  /** A product's memory is behind the database (decideBatch found a line it does not know). */
  | { readonly type: 'stale'; readonly sku: string }
  /** The commit refused: a product moved, or a keyed cart's key was used meanwhile. */
  | { readonly type: 'conflict' };

const failedWith = (code: 'storage_unavailable' | 'internal_error' | 'overloaded', reason: string): CommandResult => ({
  type: 'failed',
  code,
  reason,
});

/**
 * The cart lane: cart operations (reservations of several products, and every operation on one)
 * are decided and committed in batches, as one product's commands are. The lane takes the carts
 * waiting (up to cartBatchSizeMax and cartBatchLinesMax), holds the actors of all their products
 * in SKU order (the order every holder of several actors uses, so no two wait for each other),
 * decides the carts one after another on the evolving state (decideCartBatch: each cart all or
 * nothing), commits every product's write in ONE transaction (commitAllOrNothing: each product
 * guarded by its version and chain head), applies the writes to the actors, answers every cart and
 * lets the actors go. One batch at a time: the next one forms while this one commits.
 *
 * A refused commit is either a key another writer used meanwhile (its cart is answered from the
 * stored record, the others decided again) or a version conflict (memory is dropped and reloaded,
 * and the batch decided again; after cartBatchConflictsMax the carts go one by one, so a busy
 * product costs a batch nothing more than it costs a cart). A storage error answers 503 and drops
 * the held actors' memory (the commit is in doubt); a programming error answers 500.
 */
export class CartLane {
  private waiting: Waiting[] = [];
  private busy = false;
  private scheduled = false;

  constructor(private readonly deps: CartLaneDeps) {}

  /** Queues an operation; refuses with `overloaded` before any work when too many wait. */
  submit(op: CartOp, skus: readonly string[], key: CartKey | null): Promise<CommandResult> {
    if (this.waiting.length >= cartsWaitingMax) {
      return Promise.resolve(failedWith('overloaded', `${this.waiting.length} cart operations are waiting`));
    }
    return new Promise((resolve) => {
      this.waiting.push({ op, skus, key, resolve });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.busy || this.scheduled || this.waiting.length === 0) return;
    this.scheduled = true;
    // After the current turn, so that carts that arrive together are decided together.
    setImmediate(() => {
      this.scheduled = false;
      void this.next();
    });
  }

  private async next(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    const batch = this.take();
    try {
      await this.run(batch);
    } catch (error) {
      // Only a programming error gets here (run answers everything else); answer who is left.
      this.deps.observer.invariantViolated?.('', error instanceof Error ? error : new Error(String(error)));
      for (const w of batch) w.resolve(failedWith('internal_error', 'the engine failed'));
    } finally {
      this.busy = false;
      this.schedule();
    }
  }

  /** The oldest waiting operations, at most cartBatchSizeMax of them and cartBatchLinesMax lines. */
  private take(): Waiting[] {
    let lines = 0;
    let n = 0;
    for (const w of this.waiting) {
      if (n >= cartBatchSizeMax || (n > 0 && lines + w.skus.length > cartBatchLinesMax)) break;
      lines += w.skus.length;
      n++;
    }
    return this.waiting.splice(0, n);
  }

  /** Holds the actors of every product of the batch, in SKU order, and settles the batch. */
  private async run(batch: readonly Waiting[]): Promise<void> {
    const actors = new Map<string, ProductActor>();
    const open: Waiting[] = [];
    for (const w of batch) {
      const busy = w.skus.find((sku) => {
        const actor = actors.get(sku) ?? this.deps.actorFor(sku);
        if (actor !== null) actors.set(sku, actor);
        return actor === null;
      });
      if (busy === undefined) open.push(w);
      else w.resolve(failedWith('overloaded', `all actors of the shard of ${busy} are busy`));
    }
    const skus = [...new Set(open.flatMap((w) => w.skus))].sort();
    if (skus.length === 0) return;
    await holdAll(
      skus.map((sku) => actors.get(sku)!),
      [],
      (held) => this.settle(open, new HeldSet(held)),
    );
  }

  /** Decides and commits `batch` with its products held, again after conflicts, until all are answered. */
  private async settle(batch: readonly Waiting[], held: HeldSet): Promise<void> {
    let open = batch;
    for (let conflicts = 0; ;) {
      let attempt: Attempt;
      try {
        attempt = await this.attempt(open, held);
        if (attempt.type === 'answered') return;
        if (attempt.type === 'conflict') {
          const rest = await this.replayUsedKeys(open);
          // Some keys were used meanwhile: those carts are answered; the others did not conflict.
          if (rest.length < open.length) {
            open = rest;
            if (open.length === 0) return;
            continue;
          }
        }
      } catch (error) {
        return this.failed(open, held, error);
      }
      conflicts++;
      const sku = attempt.type === 'stale' ? attempt.sku : held.first.sku;
      this.deps.observer.versionConflict?.(sku);
      // Another writer moved a product: reload before deciding again (all of them after a refused
      // commit, which does not say which product moved).
      if (attempt.type === 'stale') held.get(sku).drop();
      else held.dropAll();
      if (conflicts > conflictRetriesMax) {
        const reason = `${conflicts} attempts refused in a row`;
        for (const w of open) w.resolve(failedWith('storage_unavailable', reason));
        return;
      }
      if (conflicts >= cartBatchConflictsMax && open.length > 1) return this.oneByOne(open, held);
    }
  }

  private async oneByOne(open: readonly Waiting[], held: HeldSet): Promise<void> {
    for (const w of open) await this.settle([w], held);
  }

  /** Loads, decides the carts in order, commits once, applies and answers; or says why not. */
  private async attempt(open: readonly Waiting[], held: HeldSet): Promise<Attempt> {
    const states = await held.states();
    const bases = new Map<string, Base | null>();
    for (const [sku, state] of states) bases.set(sku, state === null ? null : held.get(sku).base(state));
    const carts = await this.withLines(open, bases);
    const decision = decideCartBatch(bases, carts, this.deps.clock.nowMs());
    if (decision.type === 'stale') return decision;
    const { writes, results } = decision;
    if (writes.length > 0) {
      const startedMs = performance.now();
      const committed = await this.deps.store.commitAllOrNothing(writes);
      if (committed.type !== 'committed') return { type: 'conflict' };
      for (const write of writes) {
        const state = states.get(write.sku);
        assert(state !== undefined && state !== null, `a written product ${write.sku} exists`);
        held.get(write.sku).committed(state, write, startedMs, decision.cartsBySku.get(write.sku));
      }
    }
    open.forEach((w, i) => w.resolve(results[i]!));
    return { type: 'answered' };
  }

  /** Each operation with the lines of its reservation: from memory when it holds all of them. */
  private withLines(open: readonly Waiting[], bases: ReadonlyMap<string, Base | null>): Promise<CartToDecide[]> {
    return Promise.all(
      open.map(async ({ op, skus, key }) => {
        if (op.type === 'reserve') return { op, skus, key, existing: [] };
        const existing =
          linesInMemory(op.reservationId, skus, bases) ??
          (await this.deps.store.findReservationLines(op.reservationId));
        return { op, skus, key, existing };
      }),
    );
  }

  /**
   * After a refused commit: keyed carts whose key another writer used meanwhile (another instance,
   * or a retry of an operation committed long ago) are answered from the stored record, as a
   * replay or as a reused key. Returns the carts still to decide.
   */
  private async replayUsedKeys(open: readonly Waiting[]): Promise<Waiting[]> {
    const keys = open.flatMap((w) => (w.key === null ? [] : [w.key]));
    if (keys.length === 0) return [...open];
    const records = await this.deps.store.findRecords(keys);
    const used = new Map(records.map((r) => [`${r.scope}\n${r.key}`, r]));
    const rest: Waiting[] = [];
    for (const w of open) {
      const record = w.key === null ? undefined : used.get(`${w.key.scope}\n${w.key.key}`);
      if (record === undefined) rest.push(w);
      else w.resolve(replayOrReused(record, w.key!.fingerprint));
    }
    return rest;
  }

  /** A storage or programming error: memory is no longer trusted, and nobody is told it worked. */
  private async failed(open: readonly Waiting[], held: HeldSet, error: unknown): Promise<void> {
    held.dropAll();
    if (!(error instanceof StorageError)) {
      this.deps.observer.invariantViolated?.(held.first.sku, error instanceof Error ? error : new Error(String(error)));
      for (const w of open) w.resolve(failedWith('internal_error', 'the engine failed'));
      return;
    }
    this.deps.observer.storageError?.(held.first.sku, error);
    // A write the database refuses for good must not sink the carts batched with it.
    if (!error.transient && open.length > 1) return this.oneByOne(open, held);
    // In doubt: a keyed retry replays or runs once.
    for (const w of open) w.resolve(failedWith('storage_unavailable', error.message));
  }
}

/** The lines of a reservation on `skus`, if memory holds every one of them (all active). */
function linesInMemory(id: string, skus: readonly string[], bases: ReadonlyMap<string, Base | null>) {
  const lines: Reservation[] = [];
  for (const sku of skus) {
    const line = bases.get(sku)?.lookup(id);
    if (line === undefined || line.lines !== skus.length) return null;
    lines.push(line);
  }
  return lines.sort((a, b) => a.line - b.line);
}

/** The actors a batch holds, by SKU. */
class HeldSet {
  private readonly bySku: ReadonlyMap<string, HeldProduct>;

  constructor(private readonly all: readonly HeldProduct[]) {
    this.bySku = new Map(all.map((h) => [h.sku, h]));
  }

  get first(): HeldProduct {
    return this.all[0]!;
  }

  get(sku: string): HeldProduct {
    const held = this.bySku.get(sku);
    assert(held !== undefined, `the batch holds product ${sku}`);
    return held;
  }

  /** Every product's committed state, loaded where memory does not hold it; null when absent. */
  async states(): Promise<Map<string, ProductState | null>> {
    const loaded = await Promise.all(this.all.map((h) => h.state()));
    return new Map(this.all.map((h, i) => [h.sku, loaded[i]!]));
  }

  dropAll(): void {
    for (const h of this.all) h.drop();
  }
}
