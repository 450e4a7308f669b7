import { cartFingerprintOf, decideCart, lineCommands, type CartOp, type CartProduct } from './decide-cart.ts';
import { assert, StorageError } from './errors.ts';
import { holdAll } from './hold-all.ts';
import { conflictRetriesMax } from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { HeldProduct, ProductActor } from './product-actor.ts';
import { rememberWrite } from './product-creation.ts';
import type { Store } from './store.ts';
import type { Clock } from './clock.ts';
import type { BatchWrite, CommandResult, IdempotencyRecord, ProductState, Reservation } from './types.ts';

export interface CartDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly observer: EngineObserver;
  /** The product's actor; null when its shard is full of busy actors. */
  readonly actorFor: (sku: string) => ProductActor | null;
}

type Failed = Extract<CommandResult, { type: 'failed' }>;

/**
 * Operations on reservations of several products (carts), all or nothing. A cart holds the actors
 * of all its products at once, taken one after another in SKU order (so two carts never wait for
 * each other), each only once its own batches in flight have settled. It decides every line with
 * decideCart, commits every product's write in one transaction (each guarded by its version and
 * chain head), applies them to the actors and answers, then lets the actors go. A conflict reloads
 * and decides again; a storage error answers 503 and drops the held actors' memory, and so does a
 * programming error, answered 500 (internal_error) and reported as a broken invariant. Every
 * operation is reported once to the observer (cartCompleted).
 */
export class Carts {
  /** Keyed operations in flight, by scope and key: a duplicate waits for the first, then replays. */
  private readonly keysInFlight = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: CartDeps) {}

  /** Runs a cart operation and reports it to the observer once, whatever its end. */
  async execute(op: CartOp): Promise<CommandResult> {
    const startedMs = performance.now();
    let result: CommandResult;
    try {
      result = await this.run(op);
    } catch (error) {
      // A programming error outside the held actors (inside, decideAndCommit answers it): the
      // observer is told, as the actors tell it, and the caller gets internal_error.
      this.deps.observer.invariantViolated?.('', error instanceof Error ? error : new Error(String(error)));
      result = { type: 'failed', code: 'internal_error', reason: 'the engine failed' };
    }
    this.deps.observer.cartCompleted?.(op, result, performance.now() - startedMs);
    return result;
  }

  /** Ends an operation refused before it reached the coordinator (latency 0), reported like any other. */
  refused(op: CartOp, failed: Failed): CommandResult {
    this.deps.observer.cartCompleted?.(op, failed, 0);
    return failed;
  }

  private async run(op: CartOp): Promise<CommandResult> {
    const key = 'idempotencyKey' in op ? op.idempotencyKey : null;
    if (key === null) {
      const result = await this.hold(op);
      // Without a record there is no key to find used: a refused commit is decided again in there.
      assert(result !== 'key used meanwhile', 'an operation without a key never finds its key used');
      return result;
    }
    const scope = scopeOf(op);
    const slot = `${scope}\n${key}`;
    // A duplicate in flight in this instance waits for the first; across instances the unique
    // key of the record refuses the second commit, which then finds the record and replays it.
    while (this.keysInFlight.has(slot)) await this.keysInFlight.get(slot)!.catch(() => {});
    const run = this.keyed(op, scope, key);
    this.keysInFlight.set(slot, run);
    try {
      return await run;
    } finally {
      this.keysInFlight.delete(slot);
    }
  }

  private async keyed(op: CartOp, scope: string, key: string): Promise<CommandResult> {
    const fingerprint = cartFingerprintOf(op);
    for (let attempt = 0; attempt <= conflictRetriesMax; attempt++) {
      const prior = await this.guard(() => this.deps.store.findRecord(scope, key));
      if ('type' in prior) return prior;
      if (prior.value !== null) {
        return prior.value.fingerprint === fingerprint
          ? { type: 'done', outcome: prior.value.outcome, replayed: true }
          : { type: 'failed', code: 'idempotency_key_reused', reason: `key was used for ${prior.value.fingerprint}` };
      }
      const result = await this.hold(op, { scope, key, fingerprint });
      if (result !== 'key used meanwhile') return result;
    }
    return { type: 'failed', code: 'storage_unavailable', reason: 'the key was contended too often' };
  }

  /** Holds the operation's actors and decides it; `record` is its key's record, when it has one. */
  private async hold(
    op: CartOp,
    record?: Omit<IdempotencyRecord, 'outcome'>,
  ): Promise<CommandResult | 'key used meanwhile'> {
    const skus = await this.skusOf(op);
    if ('type' in skus) return skus;
    const actors: ProductActor[] = [];
    for (const sku of skus.value) {
      const actor = this.deps.actorFor(sku);
      if (actor === null)
        return { type: 'failed', code: 'overloaded', reason: `all actors of the shard of ${sku} are busy` };
      actors.push(actor);
    }
    return holdAll(actors, [], (held) => this.decideAndCommit(op, held, record));
  }

  private async skusOf(op: CartOp): Promise<{ value: string[] } | Failed> {
    if (op.type === 'reserve') {
      const skus = op.lines.map((l) => l.sku).sort();
      if (skus.some((sku, i) => sku === skus[i - 1]))
        return { type: 'failed', code: 'validation_failed', reason: 'each SKU at most once in a cart' };
      return { value: skus };
    }
    const found = await this.guard(() => this.deps.store.findReservationSkus(op.reservationId));
    if ('type' in found) return found;
    if (found.value.length === 0)
      return { type: 'failed', code: 'reservation_not_found', reason: `no reservation ${op.reservationId}` };
    return { value: [...found.value].sort() };
  }

  private async decideAndCommit(
    op: CartOp,
    held: readonly HeldProduct[],
    record: Omit<IdempotencyRecord, 'outcome'> | undefined,
  ): Promise<CommandResult | 'key used meanwhile'> {
    for (let attempt = 0; attempt <= conflictRetriesMax; attempt++) {
      try {
        const loaded = await this.load(op, held);
        if ('type' in loaded) return loaded;
        const commands = lineCommands(op, loaded.existing);
        if ('type' in commands) return commands;
        const nowMs = this.deps.clock.nowMs();
        const decision = decideCart(loaded.products, commands, nowMs);
        if (decision.type === 'failed') return decision;
        if (decision.type === 'stale') {
          this.deps.observer.versionConflict?.(decision.sku);
          await held.find((h) => h.sku === decision.sku)!.reload();
          continue;
        }
        const first = loaded.states.get(held[0]!.sku)!;
        const writes =
          record === undefined
            ? decision.writes
            : withRecord(decision.writes, { ...record, outcome: decision.outcome }, first, nowMs);
        if (writes.length === 0) return { type: 'done', outcome: decision.outcome, replayed: false };
        const commitStartedMs = performance.now();
        const committed = await this.deps.store.commitAllOrNothing(writes);
        if (committed.type === 'committed') {
          for (const write of writes) {
            held.find((h) => h.sku === write.sku)!.committed(loaded.states.get(write.sku)!, write, commitStartedMs);
          }
          return { type: 'done', outcome: decision.outcome, replayed: false };
        }
        for (const h of held) h.drop();
        this.deps.observer.versionConflict?.(held[0]!.sku);
        // Another instance may have used the same key meanwhile: look it up before deciding again.
        if (record !== undefined) return 'key used meanwhile';
      } catch (error) {
        // Either way the commit may have happened and memory is no longer trusted: every held
        // actor reloads from the database before its next decision.
        for (const h of held) h.drop();
        if (!(error instanceof StorageError)) {
          // A broken invariant or another programming error, answered as the actors answer theirs.
          const broken = error instanceof Error ? error : new Error(String(error));
          this.deps.observer.invariantViolated?.(held[0]!.sku, broken);
          return { type: 'failed', code: 'internal_error', reason: 'the engine failed' };
        }
        // In doubt: a keyed retry replays or runs once.
        this.deps.observer.storageError?.(held[0]!.sku, error);
        return { type: 'failed', code: 'storage_unavailable', reason: error.message };
      }
    }
    return {
      type: 'failed',
      code: 'storage_unavailable',
      reason: `${conflictRetriesMax + 1} attempts refused in a row`,
    };
  }

  /** Every held product's state and, for an existing reservation, its lines; unknown SKUs refuse. */
  private async load(op: CartOp, held: readonly HeldProduct[]) {
    const states = new Map<string, ProductState>();
    const unknown: string[] = [];
    for (const h of held) {
      const state = await h.state();
      if (state === null) unknown.push(h.sku);
      else states.set(h.sku, state);
    }
    if (unknown.length > 0) {
      const failed: Failed = {
        type: 'failed',
        code: 'product_not_found',
        reason: `no product ${unknown.join(', ')}`,
        unknownSkus: unknown,
      };
      return failed;
    }
    const existing: Reservation[] =
      op.type === 'reserve' ? [] : await this.deps.store.findReservationLines(op.reservationId);
    const products = new Map<string, CartProduct>();
    for (const h of held) {
      const base = h.base(states.get(h.sku)!);
      products.set(h.sku, { base, loaded: existing.filter((r) => r.sku === h.sku && base.lookup(r.id) === undefined) });
    }
    return { states, existing, products };
  }

  private async guard<T>(read: () => Promise<T>): Promise<{ value: T } | Failed> {
    try {
      return { value: await read() };
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      return { type: 'failed', code: 'storage_unavailable', reason: error.message };
    }
  }
}

/** Where a cart operation's key lives: the route for a new cart, the reservation afterwards. */
export function scopeOf(op: CartOp): string {
  return op.type === 'reserve' ? '/reservations' : `/reservations/${op.reservationId}`;
}

/**
 * The operation's record rides with the first product's write (any would do: one transaction).
 * A decision that changes nothing (a cancel of a cancelled cart, the same purchase again) still
 * stores its key's answer, alone on the first product, so a retry replays it and a reuse is refused.
 */
function withRecord(
  writes: readonly BatchWrite[],
  record: IdempotencyRecord,
  first: ProductState,
  atMs: number,
): BatchWrite[] {
  if (writes.length === 0) return [rememberWrite(first, record, atMs)];
  return writes.map((w, i) => (i === 0 ? { ...w, idempotency: [...w.idempotency, record] } : w));
}
