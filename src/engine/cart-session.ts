import type { Clock } from './clock.ts';
import type { Base } from './decide-batch.ts';
import type { CartBatchDecision } from './decide-cart-batch.ts';
import { decideHeldCarts, type HeldDecision } from './decide-held-carts.ts';
import { assert, StorageError } from './errors.ts';
import type { CartSettler } from './cart-settle.ts';
import type { HeldSet } from './held-set.ts';
import type { EngineObserver } from './observer.ts';
import type { Store } from './store.ts';
import type { ProductState } from './types.ts';
import { failEach, type WaitingCart } from './waiting-cart.ts';

export interface CartSessionDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly observer: EngineObserver;
  readonly settler: CartSettler;
  /** Batches in flight at once (limits.ts, cartBatchesInFlightMaxDefault). */
  readonly batchesInFlightMax: number;
  /** The oldest waiting carts whose products are all held (none when the first one is not). */
  readonly next: (held: HeldSet) => WaitingCart[];
  /** Settles when the next cart is submitted to the lane. */
  readonly arrival: () => Promise<void>;
}

/** A batch sent to the database (or waiting for the one before it), settled strictly in order. */
interface InFlight {
  readonly batch: readonly WaitingCart[];
  readonly decision: Extract<CartBatchDecision, { type: 'decided' }>;
  readonly states: HeldDecision['states'];
  readonly startedMs: number;
  readonly settled: Promise<Settled>;
}

type Settled =
  | { readonly type: 'committed' }
  | { readonly type: 'conflict' }
  | { readonly type: 'failed'; readonly error: unknown }
  | { readonly type: 'nothing to store' };

/** A batch for the careful path, once nothing is in flight: why its own decision did not stand. */
type Redo =
  /** Its commit was refused on its own account: look for used keys, then reload. */
  | { readonly batch: readonly WaitingCart[]; readonly cause: 'refused' }
  /** It was decided on something that did not commit, or memory was dropped: decide again. */
  | { readonly batch: readonly WaitingCart[]; readonly cause: 'decide again' }
  | { readonly batch: readonly WaitingCart[]; readonly cause: 'failed'; readonly error: unknown };

/**
 * One hold of the cart lane: the actors of a set of products held (in SKU order) while batch after
 * batch of carts over those products is decided and committed, pipelined as an actor's batches
 * are. While one batch commits, the next is decided on top of it (on the state it leaves) and its
 * statement built, then sent as soon as the first returns: the engine and the database work at
 * the same time instead of taking turns. Batches settle strictly in the order they were sent, and
 * each is applied and answered only after its COMMIT. When one does not commit, memory is no
 * longer trusted: the batches after it (decided on a state that never existed; their chain-head
 * guard refuses them) are let settle, and each is handed to the careful path (cart-settle.ts).
 *
 * The session ends when no waiting cart fits its products, or when anything else waits for one of
 * its actors (their own commands, a read, another holder): the single-product path is never
 * starved by carts for longer than the batches in flight.
 */
export class CartSession {
  private readonly inFlight: InFlight[] = [];
  private redo: Redo[] = [];
  /** Set when a batch did not commit: nothing new is taken until the careful path has run. */
  private recovering = false;

  constructor(
    private readonly deps: CartSessionDeps,
    private readonly held: HeldSet,
  ) {}

  async run(first: readonly WaitingCart[]): Promise<void> {
    await this.dispatch(first);
    for (;;) {
      if (this.mayTake()) {
        const batch = this.deps.next(this.held);
        if (batch.length > 0) {
          await this.dispatch(batch);
          continue;
        }
      }
      const oldest = this.inFlight[0];
      if (oldest === undefined) {
        if (this.redo.length > 0) await this.recover();
        // Requests answered a moment ago are being read: give them one turn before letting go.
        else if (!(await this.lingered())) return;
        continue;
      }
      const woke = await (this.mayTake()
        ? Promise.race([oldest.settled, this.deps.arrival().then(() => null)])
        : oldest.settled);
      if (woke === null) continue;
      this.inFlight.shift();
      this.land(oldest, woke);
      if (this.inFlight.length === 0 && this.redo.length > 0) await this.recover();
    }
  }

  private mayTake(): boolean {
    return !this.recovering && this.inFlight.length < this.deps.batchesInFlightMax && !this.held.contended();
  }

  /** One turn of the event loop; then whether carts that fit are waiting (and were dispatched). */
  private async lingered(): Promise<boolean> {
    await new Promise((resolve) => setImmediate(resolve));
    if (!this.mayTake()) return false;
    const batch = this.deps.next(this.held);
    if (batch.length === 0) return false;
    await this.dispatch(batch);
    return true;
  }

  /** Decides a batch on top of those in flight and sends it, without waiting for its commit. */
  private async dispatch(batch: readonly WaitingCart[]): Promise<void> {
    const newest = this.inFlight.at(-1);
    let decided: HeldDecision;
    try {
      decided = await decideHeldCarts(this.deps, batch, this.held, this.ahead());
    } catch (error) {
      if (error instanceof StorageError) this.redoLater({ batch, cause: 'decide again' });
      else this.broken(batch, error);
      return;
    }
    const { decision, states } = decided;
    if (decision.type === 'stale') {
      // Another writer: the careful path reloads the product and decides again.
      this.redoLater({ batch, cause: 'decide again' });
      return;
    }
    const writes = decision.writes;
    const settled: Promise<Settled> =
      writes.length === 0
        ? Promise.resolve({ type: 'nothing to store' })
        : this.deps.store.commitAllOrNothing(writes, newest?.settled).then(
            (result): Settled => (result.type === 'committed' ? { type: 'committed' } : { type: 'conflict' }),
            (error: unknown): Settled => ({ type: 'failed', error }),
          );
    this.inFlight.push({ batch, decision, states, startedMs: performance.now(), settled });
  }

  /** The state each product is left in by the batches in flight, the newest last. */
  private ahead(): Map<string, Base> {
    const ahead = new Map<string, Base>();
    for (const f of this.inFlight) for (const [sku, base] of f.decision.after) ahead.set(sku, base);
    return ahead;
  }

  /** Runs once per batch in flight, in the order they were sent. */
  private land(entry: InFlight, settled: Settled): void {
    const { batch, decision } = entry;
    switch (settled.type) {
      case 'nothing to store':
        // Its answers were read off the batches before it: right only if all of them committed.
        if (this.recovering) this.redo.push({ batch, cause: 'decide again' });
        else answer(batch, decision);
        return;
      case 'committed':
        // When recovering, what it was decided on is in doubt and it committed after all: it is
        // durable, so its callers are answered; memory, which missed it, is dropped and reloads.
        if (this.recovering) this.held.drop();
        else this.apply(entry);
        answer(batch, decision);
        return;
      case 'conflict':
        // The first refused batch is refused on its own account; the ones after it for its sake.
        this.redoLater({ batch, cause: this.recovering ? 'decide again' : 'refused' });
        return;
      case 'failed':
        this.redoLater({ batch, cause: 'failed', error: settled.error });
        // In doubt: whatever it wrote or not, memory is no longer trusted.
        this.held.drop();
        return;
      default: {
        const unreachable: never = settled;
        return unreachable;
      }
    }
  }

  /** After COMMIT only: each product's write becomes its actor's state. */
  private apply(entry: InFlight): void {
    for (const write of entry.decision.writes) {
      const state: ProductState | null | undefined = entry.states.get(write.sku);
      assert(state !== undefined && state !== null, `a written product ${write.sku} exists`);
      this.held.get(write.sku).committed(state, write, entry.startedMs, entry.decision.cartsBySku.get(write.sku));
    }
  }

  private redoLater(redo: Redo): void {
    this.redo.push(redo);
    this.recovering = true;
  }

  /** A programming error while deciding: its carts answer 500 and memory is no longer trusted. */
  private broken(batch: readonly WaitingCart[], error: unknown): void {
    failEach(batch, 'internal_error', 'the engine failed');
    this.deps.observer.invariantViolated?.(
      this.held.first.sku,
      error instanceof Error ? error : new Error(String(error)),
    );
    this.recovering = true;
    this.held.drop();
  }

  /** Nothing is in flight: each batch that did not commit goes through the careful path, in order. */
  private async recover(): Promise<void> {
    const redo = this.redo;
    this.redo = [];
    for (const r of redo) {
      if (r.cause === 'failed') await this.deps.settler.failed(r.batch, this.held, r.error);
      else await this.deps.settler.settle(r.batch, this.held, r.cause === 'refused');
    }
    this.recovering = false;
  }
}

function answer(batch: readonly WaitingCart[], decision: InFlight['decision']): void {
  batch.forEach((w, i) => w.resolve(decision.results[i]!));
}
