import type { Clock } from './clock.ts';
import { replayOrReused } from './decide-cart-batch.ts';
import { decideHeldCarts, skusOf } from './decide-held-carts.ts';
import { assert, StorageError } from './errors.ts';
import type { HeldSet } from './held-set.ts';
import { cartBatchConflictsMax, conflictRetriesMax } from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { Store } from './store.ts';
import { failEach, type WaitingCart } from './waiting-cart.ts';

export interface CartSettlerDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly observer: EngineObserver;
}

/** What one attempt at deciding and committing a batch came to. */
type Attempt =
  /** Every cart of the batch is answered. */
  | { readonly type: 'answered' }
  /** A product's memory is behind the database (decideBatch found a line it does not know). */
  | { readonly type: 'stale'; readonly sku: string }
  /** The commit refused: a product moved, or a keyed cart's key was used meanwhile. */
  | { readonly type: 'conflict' };

/**
 * The careful path of the cart lane: one batch of carts, its products held and nothing else of
 * theirs in flight, decided, committed and applied - again after conflicts - until every cart is
 * answered. The pipelined path (cart-session.ts) hands it every batch that did not commit.
 *
 * A refused commit is either keys another writer used meanwhile (their carts are answered from the
 * stored records, the others decided again) or a version conflict (memory is dropped and reloaded,
 * and the batch decided again; after cartBatchConflictsMax the carts go one by one, so that a busy
 * product costs a batch nothing more than it costs a cart). A storage error answers 503 and drops
 * the held actors' memory (the commit is in doubt); a programming error answers 500.
 */
export class CartSettler {
  constructor(private readonly deps: CartSettlerDeps) {}

  /** `refused`: the batch's commit was refused already (on the pipelined path); start from there. */
  async settle(batch: readonly WaitingCart[], held: HeldSet, refused = false): Promise<void> {
    let open = batch;
    let known: Attempt | null = refused ? { type: 'conflict' } : null;
    for (let conflicts = 0; ;) {
      let attempt: Attempt;
      try {
        attempt = known ?? (await this.attempt(open, held));
        known = null;
        if (attempt.type === 'answered') return;
        if (attempt.type === 'conflict') {
          const rest = await this.replayUsedKeys(open);
          // Some keys were used meanwhile: those carts are answered, and the rest may commit now.
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
      this.versionConflict(attempt, open, held);
      if (conflicts > conflictRetriesMax) return failEach(open, 'storage_unavailable', `${conflicts} attempts refused`);
      if (conflicts >= cartBatchConflictsMax && open.length > 1) return this.oneByOne(open, held);
    }
  }

  /** A storage or programming error: memory is no longer trusted, and nobody is told it worked. */
  async failed(open: readonly WaitingCart[], held: HeldSet, error: unknown): Promise<void> {
    held.drop();
    if (!(error instanceof StorageError)) {
      this.deps.observer.invariantViolated?.(held.first.sku, error instanceof Error ? error : new Error(String(error)));
      return failEach(open, 'internal_error', 'the engine failed');
    }
    this.deps.observer.storageError?.(held.first.sku, error);
    // A write the database refuses for good must not sink the carts batched with it.
    if (!error.transient && open.length > 1) return this.oneByOne(open, held);
    // In doubt: a keyed retry replays or runs once.
    failEach(open, 'storage_unavailable', error.message);
  }

  /**
   * Another writer moved a product: it reloads before the batch is decided again (every product
   * of the batch after a refused commit, which does not say which one moved).
   */
  private versionConflict(
    attempt: Exclude<Attempt, { type: 'answered' }>,
    open: readonly WaitingCart[],
    held: HeldSet,
  ) {
    const skus = attempt.type === 'stale' ? [attempt.sku] : skusOf(open);
    this.deps.observer.versionConflict?.(skus[0]!);
    held.drop(skus);
  }

  private async oneByOne(open: readonly WaitingCart[], held: HeldSet): Promise<void> {
    for (const w of open) await this.settle([w], held);
  }

  /** Loads, decides the carts in order, commits once, applies and answers; or says why not. */
  private async attempt(open: readonly WaitingCart[], held: HeldSet): Promise<Attempt> {
    const { states, decision } = await decideHeldCarts(this.deps, open, held);
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

  /**
   * After a refused commit: keyed carts whose key another writer used meanwhile (another instance,
   * or a retry of an operation committed long ago) are answered from the stored record, as a
   * replay or as a reused key. Returns the carts still to decide.
   */
  private async replayUsedKeys(open: readonly WaitingCart[]): Promise<WaitingCart[]> {
    const keys = open.flatMap((w) => (w.key === null ? [] : [w.key]));
    if (keys.length === 0) return [...open];
    const records = await this.deps.store.findRecords(keys);
    const used = new Map(records.map((r) => [`${r.scope}\n${r.key}`, r]));
    const rest: WaitingCart[] = [];
    for (const w of open) {
      const record = w.key === null ? undefined : used.get(`${w.key.scope}\n${w.key.key}`);
      if (record === undefined) rest.push(w);
      else w.resolve(replayOrReused(record, w.key!.fingerprint));
    }
    return rest;
  }
}
