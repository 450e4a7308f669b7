import type { Clock } from './clock.ts';
import { CartSession } from './cart-session.ts';
import { CartSettler } from './cart-settle.ts';
import type { CartKey } from './decide-cart-batch.ts';
import type { CartOp } from './decide-cart.ts';
import { skusOf } from './decide-held-carts.ts';
import { HeldSet } from './held-set.ts';
import { holdAll } from './hold-all.ts';
import { cartBatchLinesMax, cartBatchSizeMax, cartsWaitingMax } from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { ProductActor } from './product-actor.ts';
import type { Store } from './store.ts';
import type { CommandResult } from './types.ts';
import { failEach, type WaitingCart } from './waiting-cart.ts';

export interface CartLaneDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly observer: EngineObserver;
  /** The product's actor; null when its shard is full of busy actors. */
  readonly actorFor: (sku: string) => ProductActor | null;
  /** Batches in flight at once in one hold (limits.ts, cartBatchesInFlightMaxDefault). */
  readonly batchesInFlightMax: number;
}

/**
 * The cart lane: cart operations (reservations of several products, and every operation on one)
 * are decided and committed in batches, as one product's commands are. The lane takes the carts
 * waiting (up to cartBatchSizeMax and cartBatchLinesMax), holds the actors of all their products in
 * SKU order (the order every holder of several actors uses, so no two wait for each other), and
 * runs a session (cart-session.ts): batch after batch over those products, each decided cart by
 * cart on the evolving state (decideCartBatch: each cart all or nothing) and committed in ONE
 * transaction (commitAllOrNothing: each product guarded by its version and chain head). When the
 * session lets its actors go, the carts that did not fit start the next one.
 */
export class CartLane {
  private waiting: WaitingCart[] = [];
  private busy = false;
  private scheduled = false;
  /** Settles at the next submit (see `arrival`); null until someone waits for it. */
  private arrived: { readonly promise: Promise<void>; readonly settle: () => void } | null = null;
  private readonly settler: CartSettler;

  constructor(private readonly deps: CartLaneDeps) {
    this.settler = new CartSettler(deps);
  }

  /** Queues an operation; refuses with `overloaded` before any work when too many wait. */
  submit(op: CartOp, skus: readonly string[], key: CartKey | null): Promise<CommandResult> {
    if (this.waiting.length >= cartsWaitingMax) {
      const reason = `${this.waiting.length} cart operations are waiting`;
      return Promise.resolve({ type: 'failed', code: 'overloaded', reason });
    }
    return new Promise((resolve) => {
      this.waiting.push({ op, skus, key, resolve });
      this.arrived?.settle();
      this.arrived = null;
      this.schedule();
    });
  }

  /** Settles when the next operation is submitted: a session waiting on its commit may take it. */
  private arrival(): Promise<void> {
    if (this.arrived === null) {
      let settle!: () => void;
      const promise = new Promise<void>((resolve) => (settle = resolve));
      this.arrived = { promise, settle };
    }
    return this.arrived.promise;
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
    const batch = this.take(null);
    try {
      await this.run(batch);
    } catch (error) {
      // Only a programming error gets here (sessions answer everything else); answer who is left.
      this.deps.observer.invariantViolated?.('', error instanceof Error ? error : new Error(String(error)));
      failEach(batch, 'internal_error', 'the engine failed');
    } finally {
      this.busy = false;
      this.schedule();
    }
  }

  /**
   * The oldest waiting operations, at most cartBatchSizeMax of them and cartBatchLinesMax lines;
   * with `held`, only while their products are all held (the oldest first, whatever fits after it).
   */
  private take(held: HeldSet | null): WaitingCart[] {
    let lines = 0;
    let n = 0;
    for (const w of this.waiting) {
      if (n >= cartBatchSizeMax || (n > 0 && lines + w.skus.length > cartBatchLinesMax)) break;
      if (held !== null && !w.skus.every((sku) => held.has(sku))) break;
      lines += w.skus.length;
      n++;
    }
    return this.waiting.splice(0, n);
  }

  /** Holds the actors of every product of the batch, in SKU order, for a session. */
  private async run(batch: readonly WaitingCart[]): Promise<void> {
    const actors = new Map<string, ProductActor>();
    const open: WaitingCart[] = [];
    for (const w of batch) {
      const busy = w.skus.find((sku) => {
        const actor = actors.get(sku) ?? this.deps.actorFor(sku);
        if (actor !== null) actors.set(sku, actor);
        return actor === null;
      });
      if (busy === undefined) open.push(w);
      else failEach([w], 'overloaded', `all actors of the shard of ${busy} are busy`);
    }
    const skus = skusOf(open);
    if (skus.length === 0) return;
    const deps = {
      ...this.deps,
      settler: this.settler,
      next: (held: HeldSet) => this.take(held),
      arrival: () => this.arrival(),
    };
    await holdAll(
      skus.map((sku) => actors.get(sku)!),
      [],
      (held) => new CartSession(deps, new HeldSet(held)).run(open),
    );
  }
}
