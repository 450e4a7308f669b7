import type { Clock } from './clock.ts';
import {
  adjustCommandOf,
  decideBulkAdjustments,
  type BulkAdjustment,
  type BulkAdjustmentsDecision,
} from './decide-bulk-adjustments.ts';
import { assert, StorageError } from './errors.ts';
import { holdAll } from './hold-all.ts';
import { answerFromRecord, CallsInFlight, recordOf } from './keyed-calls.ts';
import { conflictRetriesMax } from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { HeldProduct, ProductActor } from './product-actor.ts';
import type { ClaimedKey, Store } from './store.ts';
import type { BulkItem, Command, CommandResult, IdempotencyRecord, Outcome, ProductState } from './types.ts';

/** Where the key of POST /stock-adjustments/bulk lives: the route, not a product. */
export const bulkAdjustmentsScope = '/stock-adjustments/bulk';

export interface BulkAdjustmentsCall {
  /** In the order of the request; each SKU at most once. */
  readonly adjustments: readonly BulkAdjustment[];
  readonly atomic: boolean;
  readonly key: string;
  /** What the call asked for, compared under its key (bulkFingerprintOf). */
  readonly fingerprint: string;
  readonly requestId: string;
}

export interface BulkAdjustmentsDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly observer: EngineObserver;
  /** The product's actor; null when its shard is full of busy actors. */
  readonly actorFor: (sku: string) => ProductActor | null;
  /** Submits a command to its product's actor, as a single request would. */
  readonly execute: (sku: string, command: Command) => Promise<CommandResult>;
}

type Failed = Extract<CommandResult, { type: 'failed' }>;

/**
 * The key an item of a call applied one by one carries on its own product: the call's key, marked
 * with a character no client's key can hold (keys are printable ASCII), so it is never a key a
 * client sent to POST /products/{sku}/stock-adjustments.
 */
export function itemKeyOf(key: string): string {
  return `bulk\u2192${key}`;
}

/**
 * Stock adjustments in bulk (POST /stock-adjustments/bulk), in one of two ways.
 *
 * One by one (not atomic): each item goes to its product's actor as the single adjustment would,
 * all at once, under a key of its own on its product (itemKeyOf), so each is applied once however
 * often the call is retried. The call's key is claimed first, with the body's fingerprint, and
 * remembers the results once every item has a final one.
 *
 * Atomic: as a cart, it holds all its products' actors (in SKU order), decides every item, and
 * commits every product's write with the call's record in one transaction - all or nothing.
 */
export class BulkAdjustments {
  private readonly inFlight = new CallsInFlight();

  constructor(private readonly deps: BulkAdjustmentsDeps) {}

  async run(call: BulkAdjustmentsCall): Promise<CommandResult> {
    const startedMs = performance.now();
    try {
      if (!call.atomic) return await this.inFlight.one(bulkAdjustmentsScope, call.key, () => this.oneByOne(call));
      const result = await this.inFlight.one(bulkAdjustmentsScope, call.key, () => this.atomic(call));
      // The actors report the items they decide; the items of an atomic call are reported here.
      this.report(call, result.result, result.decision, performance.now() - startedMs);
      return result.result;
    } catch (error) {
      // A programming error outside the held actors: told to the observer, answered 500.
      this.deps.observer.invariantViolated?.('', error instanceof Error ? error : new Error(String(error)));
      return { type: 'failed', code: 'internal_error', reason: 'the engine failed' };
    }
  }

  private scopedKey(call: BulkAdjustmentsCall): ClaimedKey {
    return { scope: bulkAdjustmentsScope, key: call.key, fingerprint: call.fingerprint };
  }

  private async oneByOne(call: BulkAdjustmentsCall): Promise<CommandResult> {
    const key = this.scopedKey(call);
    const claim = await this.guard(() => this.deps.store.claimKey(key, { kind: 'pending' }, this.deps.clock.nowMs()));
    if ('type' in claim) return claim;
    if (claim.value.type === 'used') {
      const prior = claim.value.record;
      // The same call cut short (or running on another instance): its items replay by their keys.
      if (prior.fingerprint !== call.fingerprint || prior.outcome.kind !== 'pending') {
        return answerFromRecord(prior, call.fingerprint);
      }
    }
    const itemKey = itemKeyOf(call.key);
    const results = await Promise.all(
      call.adjustments.map((a) =>
        this.deps.execute(a.sku, { ...adjustCommandOf(a, call.requestId), idempotencyKey: itemKey }),
      ),
    );
    const outcome: Outcome = { kind: 'bulk', items: results.map((r, i) => itemOf(call.adjustments[i]!.sku, r)) };
    // An item in doubt leaves the key claimed: a retry applies it once, and replays the others.
    if (results.some(inDoubt)) return { type: 'done', outcome, replayed: false };
    const completed = await this.guard(() => this.deps.store.completeKey(key, outcome));
    // The items are applied but the answer is not remembered: not acknowledged; a retry with the
    // key replays every item by its own key.
    if ('type' in completed) return completed;
    return { type: 'done', outcome, replayed: false };
  }

  private async atomic(
    call: BulkAdjustmentsCall,
  ): Promise<{ result: CommandResult; decision: BulkAdjustmentsDecision | null }> {
    for (let attempt = 0; attempt <= conflictRetriesMax; attempt++) {
      const prior = await this.guard(() => recordOf(this.deps.store, bulkAdjustmentsScope, call.key));
      if ('type' in prior) return { result: prior, decision: null };
      if (prior.value !== null) return { result: answerFromRecord(prior.value, call.fingerprint), decision: null };
      const actors: ProductActor[] = [];
      for (const sku of call.adjustments.map((a) => a.sku).sort()) {
        const actor = this.deps.actorFor(sku);
        if (actor === null) {
          const reason = `all actors of the shard of ${sku} are busy`;
          return { result: { type: 'failed', code: 'overloaded', reason }, decision: null };
        }
        actors.push(actor);
      }
      const done = await holdAll(actors, [], (held) => this.decideAndCommit(call, held));
      if (done !== 'key used meanwhile') return done;
    }
    const reason = `${conflictRetriesMax + 1} attempts refused in a row`;
    return { result: { type: 'failed', code: 'storage_unavailable', reason }, decision: null };
  }

  /**
   * With every product held: load, decide, commit all or nothing, apply. A refused commit means
   * another writer (another instance) moved a product, or used the key: look the key up again.
   */
  private async decideAndCommit(
    call: BulkAdjustmentsCall,
    held: readonly HeldProduct[],
  ): Promise<{ result: CommandResult; decision: BulkAdjustmentsDecision | null } | 'key used meanwhile'> {
    try {
      const states = new Map<string, ProductState>();
      const loaded = await Promise.all(held.map((h) => h.state()));
      const unknownSkus = held.filter((_, i) => loaded[i] === null).map((h) => h.sku);
      if (unknownSkus.length > 0) {
        const reason = `no product ${unknownSkus.join(', ')}`;
        return { result: { type: 'failed', code: 'product_not_found', reason, unknownSkus }, decision: null };
      }
      held.forEach((h, i) => states.set(h.sku, loaded[i]!));
      const bases = new Map(held.map((h) => [h.sku, h.base(states.get(h.sku)!)]));
      const decision = decideBulkAdjustments(bases, call.adjustments, call.requestId, this.deps.clock.nowMs());
      const record: IdempotencyRecord = { ...this.scopedKey(call), outcome: decision.outcome };
      // The record rides with one product's write (any would do: one transaction).
      const writes = decision.writes.map((w, i) => (i === 0 ? { ...w, idempotency: [...w.idempotency, record] } : w));
      const commitStartedMs = performance.now();
      const committed = await this.deps.store.commitAllOrNothing(writes);
      if (committed.type !== 'committed') {
        for (const h of held) h.drop();
        this.deps.observer.versionConflict?.(held[0]!.sku);
        return 'key used meanwhile';
      }
      const heldBySku = new Map(held.map((h) => [h.sku, h]));
      for (const write of writes) {
        const h = heldBySku.get(write.sku);
        assert(h !== undefined, `the product ${write.sku} of a committed write is held`);
        h.committed(states.get(write.sku)!, write, commitStartedMs);
      }
      return { result: { type: 'done', outcome: decision.outcome, replayed: false }, decision };
    } catch (error) {
      // Either way the commit may have happened: every held actor reloads before its next decision.
      for (const h of held) h.drop();
      if (!(error instanceof StorageError)) {
        const broken = error instanceof Error ? error : new Error(String(error));
        this.deps.observer.invariantViolated?.(held[0]!.sku, broken);
        return { result: { type: 'failed', code: 'internal_error', reason: 'the engine failed' }, decision: null };
      }
      // In doubt: a keyed retry replays or runs once.
      this.deps.observer.storageError?.(held[0]!.sku, error);
      return { result: { type: 'failed', code: 'storage_unavailable', reason: error.message }, decision: null };
    }
  }

  /**
   * Every item of an atomic call ends once, as a command: its own decision when the call was
   * decided, otherwise the call's answer (a replay, or a failure of the whole call).
   */
  private report(
    call: BulkAdjustmentsCall,
    result: CommandResult,
    decision: BulkAdjustmentsDecision | null,
    latencyMs: number,
  ): void {
    const { observer } = this.deps;
    call.adjustments.forEach((a, i) => {
      const command = decision?.commands[i] ?? adjustCommandOf(a, call.requestId);
      observer.commandCompleted?.(a.sku, command, decision?.results[i] ?? result, latencyMs);
    });
  }

  private async guard<T>(read: () => Promise<T>): Promise<{ value: T } | Failed> {
    try {
      return { value: await read() };
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      this.deps.observer.storageError?.('', error);
      return { type: 'failed', code: 'storage_unavailable', reason: error.message };
    }
  }
}

/** A failure after which the item may or may not have been applied. */
function inDoubt(result: CommandResult): boolean {
  return (
    result.type === 'failed' &&
    (result.code === 'storage_unavailable' || result.code === 'overloaded' || result.code === 'internal_error')
  );
}

/** One item applied one by one, as its actor answered it. */
function itemOf(sku: string, result: CommandResult): BulkItem {
  if (result.type === 'failed') return { type: 'refused', sku, code: result.code };
  const { outcome } = result;
  if (outcome.kind === 'rejected') return { type: 'refused', sku, code: outcome.code };
  assert(outcome.kind === 'inventory', `an adjustment of ${sku} answers its inventory or a refusal`);
  return { type: 'inventory', inventory: outcome.inventory };
}
