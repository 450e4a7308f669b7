import type {
  AuditEvent,
  BatchWrite,
  Counters,
  IdempotencyRecord,
  Outcome,
  ProductState,
  Reservation,
} from './types.ts';

export interface NewProduct {
  readonly sku: string;
  readonly name: string;
  readonly stock: number;
  readonly nowMs: number;
  /** Its first event (seq 1, `product_created`), written with the row. */
  readonly event: AuditEvent;
  /** The create's answer under its Idempotency-Key, written with the row; null without a key. */
  readonly idempotency: IdempotencyRecord | null;
}

/** One product of a bulk create: its row and its first event (seq 1, `product_created`). */
export interface NewBulkProduct {
  readonly sku: string;
  readonly name: string;
  readonly stock: number;
  readonly event: AuditEvent;
}

/** A product a bulk create found already there, as committed. */
export interface ExistingProduct {
  readonly sku: string;
  readonly name: string;
  readonly initialStock: number;
  readonly createdAtMs: number;
  readonly counters: Counters;
  readonly activeReservations: number;
}

/** A key in a scope of its own (a bulk route), with what its call asked for. */
export interface ClaimedKey extends ScopedKey {
  readonly fingerprint: string;
}

export interface NewProducts {
  /** Each SKU at most once; all created at `nowMs`. */
  readonly products: readonly NewBulkProduct[];
  readonly nowMs: number;
  /** Where the call's answer is remembered, in the same transaction as the products; null without a key. */
  readonly record: ClaimedKey | null;
  /**
   * The call's answer from what the statement did: the SKUs it created, and the others as they
   * are. Called once, before the record (which stores what it returns) is written.
   */
  readonly answer: (created: ReadonlySet<string>, existing: ReadonlyMap<string, ExistingProduct>) => Outcome;
}

export type CreateProductsResult =
  | { readonly type: 'stored'; readonly outcome: Outcome }
  /** Another call used the record's key meanwhile: nothing was written; look the key up. */
  | { readonly type: 'key used' };

export type ClaimResult = { readonly type: 'claimed' } | { readonly type: 'used'; readonly record: IdempotencyRecord };

export type CreateProductResult =
  | { readonly type: 'created'; readonly product: ProductState }
  | { readonly type: 'exists'; readonly product: ProductState };

export type CommitResult =
  | { readonly type: 'committed' }
  | { readonly type: 'conflict' }
  | { readonly type: 'known'; readonly records: readonly IdempotencyRecord[] };

/** A key in its scope. */
export interface ScopedKey {
  readonly scope: string;
  readonly key: string;
}

/** A due line: a reservation of several lines is due once per line (all share its expiry). */
export interface DueReservation {
  readonly id: string;
  readonly sku: string;
  readonly lines: number;
}

/**
 * What the engine needs from storage. The engine knows nothing of SQL; src/persistence
 * implements this over PostgreSQL. Every method throws StorageError on a storage failure.
 */
export interface Store {
  /** The product row, its active reservations and the head of its hash chain; null if absent. */
  loadProduct(sku: string): Promise<ProductState | null>;
  /**
   * Inserts the product, its first event and its idempotency record in one statement, or nothing
   * when the SKU exists (`exists`); either way returns the product as read afterwards.
   */
  createProduct(input: NewProduct): Promise<CreateProductResult>;
  /** The product's committed version (null if absent): tells whether memory is still current. */
  productVersion(sku: string): Promise<number | null>;
  findReservations(sku: string, ids: readonly string[]): Promise<Reservation[]>;
  /** The products of a reservation's lines, in line order (empty when it does not exist). */
  findReservationSkus(id: string): Promise<string[]>;
  /** Every line of a reservation, in line order (empty when it does not exist). */
  findReservationLines(id: string): Promise<Reservation[]>;
  /**
   * The records of keys in scopes other than a product's (a cart's route or reservation), each
   * with its scope; keys never used have none.
   */
  findRecords(keys: readonly ScopedKey[]): Promise<IdempotencyRecord[]>;
  /**
   * Commits the writes of several products as one: all of them or none (carts). `conflict` when
   * any product moved, or when an operation's scoped key was used meanwhile (reload, look again).
   * `after`: a commit still in flight that these writes were decided on top of; they are sent once
   * it has settled (whatever its result), so they never take its products' locks first.
   */
  commitAllOrNothing(writes: readonly BatchWrite[], after?: Promise<unknown>): Promise<CommitResult>;
  /**
   * Commits the batch in one transaction, or writes nothing and says why: `conflict` when the
   * product's version is not `versionBefore` or its newest event's hash is not `hashBefore`; `known` when some of its idempotency keys were used
   * before (the records are returned so the batch can be decided again, replaying them).
   */
  commitBatch(write: BatchWrite): Promise<CommitResult>;
  /**
   * Creates products in bulk: every SKU not there yet gets its row and its first event, the others
   * are read as they are, and the answer computed from both is remembered under `record` - all in
   * one transaction when there is a record. Existing products are left untouched.
   */
  createProducts(input: NewProducts): Promise<CreateProductsResult>;
  /**
   * Writes `outcome` under a scoped key unless the key has a record (then returns it), so a call
   * that applies its items one by one is bound to its key before the first item is applied.
   */
  claimKey(key: ClaimedKey, outcome: Outcome, atMs: number): Promise<ClaimResult>;
  /** Replaces what a claimed key remembers (the same key and fingerprint) with the call's answer. */
  completeKey(key: ClaimedKey, outcome: Outcome): Promise<void>;
  findDueReservations(nowMs: number, limit: number): Promise<DueReservation[]>;
  deleteIdempotencyRecordsBefore(beforeMs: number, limit: number): Promise<number>;
}
