import type { BatchWrite, CommandResult, IdempotencyRecord, Outcome, ProductState, ProductView } from './types.ts';
import { isoOf } from './time.ts';
import { inventoryView } from './views.ts';

export type ProductOutcome = Extract<Outcome, { kind: 'product' }>;

/** What a create did to the database, and what its caller is answered. */
export interface ProductCreation {
  /** `created`: this call inserted the product; `exists`: it found the product already there. */
  readonly type: 'created' | 'exists';
  /** The product as read from the database after the call. */
  readonly product: ProductState;
  readonly result: CommandResult;
}

export function productView(state: ProductState): ProductView {
  return {
    sku: state.sku,
    name: state.name,
    createdAt: isoOf(state.createdAtMs),
    inventory: inventoryView(state.sku, state.counters, state.active.size),
  };
}

/**
 * The answer to the create that inserts the product (201), known before the insert: it is the
 * idempotency record written in the same statement as the row.
 */
export function createdOutcome(sku: string, name: string, stock: number, nowMs: number): ProductOutcome {
  return { kind: 'product', created: true, product: createdView(sku, name, stock, isoOf(nowMs)) };
}

/** A product as its create left it: its whole stock available, version 1 (its product_created event). */
export function createdView(sku: string, name: string, stock: number, createdAt: string): ProductView {
  const counters = { total: stock, reserved: 0, purchased: 0, version: 1 };
  return { sku, name, createdAt, inventory: inventoryView(sku, counters, 0) };
}

/**
 * The answer to a create that finds its product: the same sku, name and stock again is the
 * product as it is now (200); anything different is product_exists (409), which changes nothing.
 */
export function outcomeForExisting(product: ProductState, name: string, stock: number): Outcome {
  if (product.name === name && product.initialStock === stock) {
    return { kind: 'product', created: false, product: productView(product) };
  }
  const detail = `product ${product.sku} exists with a different name or stock`;
  return { kind: 'rejected', code: 'product_exists', detail };
}

/**
 * Remembers a keyed create's answer on a product that exists: no event and no counter change,
 * only the record, guarded by the product's version and chain head like every batch - so the
 * stored 200 body is the product as committed, and a key already used on it is found (`known`).
 */
export function rememberWrite(product: ProductState, record: IdempotencyRecord, atMs: number): BatchWrite {
  return {
    sku: product.sku,
    versionBefore: product.counters.version,
    hashBefore: product.lastHash,
    counters: product.counters,
    atMs,
    inserted: [],
    changed: [],
    events: [],
    idempotency: [record],
  };
}
