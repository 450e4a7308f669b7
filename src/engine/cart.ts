import { CartLane, type CartLaneDeps } from './cart-lane.ts';
import { replayOrReused, type CartKey } from './decide-cart-batch.ts';
import { cartFingerprintOf, type CartOp } from './decide-cart.ts';
import { StorageError } from './errors.ts';
import type { CommandResult } from './types.ts';

export type CartDeps = CartLaneDeps;

type Failed = Extract<CommandResult, { type: 'failed' }>;

/** A keyed operation in flight in this instance: what it asked for, and its answer to come. */
interface KeyInFlight {
  readonly fingerprint: string;
  readonly result: Promise<CommandResult>;
}

/**
 * Operations on reservations of several products (carts), all or nothing. The coordinator finds
 * an operation's products, keeps keyed semantics and reports every operation once to the observer
 * (cartCompleted); the cart lane (cart-lane.ts) decides and commits them in batches.
 *
 * Keys are not looked up before deciding: the batch's commit stores every keyed operation's record
 * and refuses a key used before, and the lane then answers that operation from the stored record
 * (a replay, or idempotency_key_reused). A duplicate in flight in this instance waits for the first
 * and, once that one is answered, replays its answer without going to the database.
 */
export class Carts {
  /** Keyed operations in flight, by scope and key: a duplicate waits for the first, then replays. */
  private readonly keysInFlight = new Map<string, KeyInFlight>();
  private readonly lane: CartLane;

  constructor(private readonly deps: CartDeps) {
    this.lane = new CartLane(deps);
  }

  /**
   * Runs a cart operation and reports it to the observer once, whatever its end. `skus`: the
   * products of an existing reservation, when the caller has looked them up already.
   */
  async execute(op: CartOp, skus?: readonly string[]): Promise<CommandResult> {
    const startedMs = performance.now();
    let result: CommandResult;
    try {
      result = await this.run(op, skus);
    } catch (error) {
      // A programming error outside the lane (the lane answers its own): the observer is told, as
      // the actors tell it, and the caller gets internal_error.
      this.deps.observer.invariantViolated?.('', error instanceof Error ? error : new Error(String(error)));
      result = { type: 'failed', code: 'internal_error', reason: 'the engine failed' };
    }
    this.deps.observer.cartCompleted?.(op, result, performance.now() - startedMs);
    return result;
  }

  private async run(op: CartOp, knownSkus: readonly string[] | undefined): Promise<CommandResult> {
    const skus = knownSkus === undefined ? await this.skusOf(op) : { value: [...knownSkus].sort() };
    if ('type' in skus) return skus;
    if (op.type === 'expire' || op.idempotencyKey === null) return this.lane.submit(op, skus.value, null);
    const key: CartKey = { scope: scopeOf(op), key: op.idempotencyKey, fingerprint: cartFingerprintOf(op) };
    const slot = `${key.scope}\n${key.key}`;
    // A duplicate in flight in this instance waits for the first; across instances the unique key
    // of the record refuses the second commit, and the lane answers it from the record.
    for (let ahead = this.keysInFlight.get(slot); ahead !== undefined; ahead = this.keysInFlight.get(slot)) {
      const first = await ahead.result;
      // Answered, so stored under the key in the same transaction: replay it (or refuse the reuse).
      if (first.type === 'done')
        return replayOrReused({ fingerprint: ahead.fingerprint, outcome: first.outcome }, key.fingerprint);
    }
    const result = this.lane.submit(op, skus.value, key);
    this.keysInFlight.set(slot, { fingerprint: key.fingerprint, result });
    try {
      return await result;
    } finally {
      this.keysInFlight.delete(slot);
    }
  }

  private async skusOf(op: CartOp): Promise<{ value: string[] } | Failed> {
    if (op.type === 'reserve') {
      const skus = op.lines.map((l) => l.sku).sort();
      if (skus.some((sku, i) => sku === skus[i - 1]))
        return { type: 'failed', code: 'validation_failed', reason: 'each SKU at most once in a cart' };
      return { value: skus };
    }
    let found: string[];
    try {
      found = await this.deps.store.findReservationSkus(op.reservationId);
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      return { type: 'failed', code: 'storage_unavailable', reason: error.message };
    }
    if (found.length === 0)
      return { type: 'failed', code: 'reservation_not_found', reason: `no reservation ${op.reservationId}` };
    return { value: found.sort() };
  }
}

/** Where a cart operation's key lives: the route for a new cart, the reservation afterwards. */
export function scopeOf(op: CartOp): string {
  return op.type === 'reserve' ? '/reservations' : `/reservations/${op.reservationId}`;
}
