import { CallsInFlight, answerFromRecord, recordOf } from './keyed-calls.ts';
import type { Clock } from './clock.ts';
import { productCreatedEvent } from './decide.ts';
import { assert, StorageError } from './errors.ts';
import { chainEvents, genesisHash } from './event-hash.ts';
import { conflictRetriesMax } from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { ClaimedKey, ExistingProduct, NewBulkProduct, Store } from './store.ts';
import { isoOf } from './time.ts';
import type { BulkItem, CommandResult, EventDraft, Outcome } from './types.ts';
import { inventoryView } from './views.ts';

/** Where the key of POST /products/bulk lives: the route, not a product. */
export const bulkProductsScope = '/products/bulk';

/** One item of POST /products/bulk as the API checked it: a create, or refused on its own. */
export type BulkProductItem =
  | { readonly type: 'create'; readonly sku: string; readonly name: string; readonly stock: number }
  | { readonly type: 'invalid'; readonly sku: string | null; readonly field: string };

export interface BulkProductsCall {
  /** In the order of the request; the SKUs of the creates are distinct. */
  readonly items: readonly BulkProductItem[];
  /** What the call asked for, compared under its key (bulkFingerprintOf). */
  readonly fingerprint: string;
  readonly key: string | null;
  readonly requestId: string;
}

export interface BulkProductsDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly observer: EngineObserver;
}

/**
 * Creates products in bulk: each item with the semantics of POST /products (201 created, 200 the
 * same again, 409 product_exists), all in a handful of statements (Store.createProducts). The
 * products go straight to the database, not through their actors: a product that does not exist
 * has no state in any actor (its absence is never cached), so the first command for it loads it.
 * With an Idempotency-Key the whole answer is stored with the products it created.
 */
export class BulkProducts {
  private readonly inFlight = new CallsInFlight();

  constructor(private readonly deps: BulkProductsDeps) {}

  async run(call: BulkProductsCall): Promise<CommandResult> {
    try {
      const { key } = call;
      if (key === null) {
        const result = await this.create(call, null);
        assert(result !== 'key used meanwhile', 'a call without a key never finds its key used');
        return result;
      }
      return await this.inFlight.one(bulkProductsScope, key, () => this.keyed(call, key));
    } catch (error) {
      // A programming error: told to the observer as the actors tell theirs, answered 500.
      this.deps.observer.invariantViolated?.('', error instanceof Error ? error : new Error(String(error)));
      return { type: 'failed', code: 'internal_error', reason: 'the engine failed' };
    }
  }

  private async keyed(call: BulkProductsCall, key: string): Promise<CommandResult> {
    const record: ClaimedKey = { scope: bulkProductsScope, key, fingerprint: call.fingerprint };
    for (let attempt = 0; attempt <= conflictRetriesMax; attempt++) {
      let prior;
      try {
        prior = await recordOf(this.deps.store, bulkProductsScope, key);
      } catch (error) {
        return this.storageFailed(error);
      }
      if (prior !== null) return answerFromRecord(prior, call.fingerprint);
      const result = await this.create(call, record);
      if (result !== 'key used meanwhile') return result;
    }
    return { type: 'failed', code: 'storage_unavailable', reason: 'the key was contended too often' };
  }

  private async create(
    call: BulkProductsCall,
    record: ClaimedKey | null,
  ): Promise<CommandResult | 'key used meanwhile'> {
    const nowMs = this.deps.clock.nowMs();
    const products = newProducts(call, nowMs);
    const answer = (created: ReadonlySet<string>, existing: ReadonlyMap<string, ExistingProduct>) =>
      bulkProductsOutcome(call.items, created, existing, nowMs);
    // Nothing to write: every item was refused on its own, and there is no key to remember it under.
    if (products.length === 0 && record === null) {
      return { type: 'done', outcome: answer(new Set(), new Map()), replayed: false };
    }
    try {
      const stored = await this.deps.store.createProducts({ products, nowMs, record, answer });
      if (stored.type === 'key used') return 'key used meanwhile';
      return { type: 'done', outcome: stored.outcome, replayed: false };
    } catch (error) {
      // In doubt: a keyed retry replays or creates once; an unkeyed one finds its products (200).
      return this.storageFailed(error);
    }
  }

  private storageFailed(error: unknown): CommandResult {
    if (!(error instanceof StorageError)) throw error;
    this.deps.observer.storageError?.('', error);
    return { type: 'failed', code: 'storage_unavailable', reason: error.message };
  }
}

/**
 * Each create's row and first event, hashed exactly as a single create's is (the key is part of
 * the event, so the chain covers which call created the product).
 */
function newProducts(call: BulkProductsCall, nowMs: number): NewBulkProduct[] {
  const products: NewBulkProduct[] = [];
  const skus = new Set<string>();
  for (const item of call.items) {
    if (item.type !== 'create') continue;
    assert(!skus.has(item.sku), `a bulk create names ${item.sku} once`);
    skus.add(item.sku);
    const draft: EventDraft = {
      ...productCreatedEvent(item.stock, call.requestId, nowMs),
      idempotencyKey: call.key,
    };
    const [event] = chainEvents(genesisHash, item.sku, [draft]);
    products.push({ sku: item.sku, name: item.name, stock: item.stock, event: event! });
  }
  return products;
}

/**
 * The answer to a bulk create, item by item in the order of the request: what POST /products
 * would have answered each one (201, 200, 409), or its own refusal (400).
 */
export function bulkProductsOutcome(
  items: readonly BulkProductItem[],
  created: ReadonlySet<string>,
  existing: ReadonlyMap<string, ExistingProduct>,
  nowMs: number,
): Outcome {
  return { kind: 'bulk', items: items.map((item) => itemOutcome(item, created, existing, nowMs)) };
}

function itemOutcome(
  item: BulkProductItem,
  created: ReadonlySet<string>,
  existing: ReadonlyMap<string, ExistingProduct>,
  nowMs: number,
): BulkItem {
  if (item.type === 'invalid') return { type: 'invalid', sku: item.sku, field: item.field };
  if (created.has(item.sku)) {
    return { type: 'created', sku: item.sku, name: item.name, stock: item.stock, createdAtMs: nowMs };
  }
  const found = existing.get(item.sku);
  assert(found !== undefined, `product ${item.sku} was created or found`);
  if (found.name !== item.name || found.initialStock !== item.stock) {
    return { type: 'refused', sku: item.sku, code: 'product_exists' };
  }
  const product = {
    sku: found.sku,
    name: found.name,
    createdAt: isoOf(found.createdAtMs),
    inventory: inventoryView(found.sku, found.counters, found.activeReservations),
  };
  return { type: 'product', product };
}
