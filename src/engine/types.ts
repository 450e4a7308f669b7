// The engine's domain types. Commands, outcomes and failures are discriminated unions so that
// every branch is handled and illegal combinations cannot be written down.

export type ReservationStatus = 'active' | 'purchased' | 'cancelled' | 'expired';

/**
 * One line of a reservation: the part of it that one product holds. A reservation of one product
 * has one line; a cart has one per product, all sharing the id and the status (all or nothing).
 */
export interface Reservation {
  readonly id: string;
  readonly sku: string;
  readonly quantity: number;
  /** This line's place in the request (0-based), and how many lines the reservation has. */
  readonly line: number;
  readonly lines: number;
  /** How much of the line was bought, once purchased (the rest went back to available). */
  readonly purchasedQuantity: number | null;
  readonly status: ReservationStatus;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  /** When it left `active`; null while active. */
  readonly finishedAtMs: number | null;
}

export interface Counters {
  readonly total: number;
  readonly reserved: number;
  readonly purchased: number;
  /** Number of events of the product so far; the seq of its newest event. */
  readonly version: number;
}

/** A product's committed state as its actor holds it. */
export interface ProductState {
  readonly sku: string;
  readonly name: string;
  readonly initialStock: number;
  readonly createdAtMs: number;
  counters: Counters;
  /** Hash of the newest event: the head of the product's hash chain. */
  lastHash: string;
  /** Active reservations by id. Terminal ones live only in the database. */
  readonly active: Map<string, Reservation>;
}

export type EventSource = 'api' | 'sweeper';

/**
 * A business rule's refusal (409). Every one but `product_exists` is decided by `decide()` and is
 * a `rejected` audit event; `product_exists` refuses a create without touching the product.
 */
export type RejectionCode =
  | 'product_exists'
  | 'insufficient_stock'
  | 'stock_limit_exceeded'
  | 'reservation_expired'
  | 'reservation_cancelled'
  | 'reservation_purchased'
  | 'reservation_lifetime_exceeded'
  | 'quantity_exceeds_reservation';

export type Command =
  | {
      readonly type: 'reserve';
      readonly reservationId: string;
      readonly quantity: number;
      readonly ttlSeconds: number;
      /** Null for a line of a cart: the cart's key lives in the cart's scope, not the product's. */
      readonly idempotencyKey: string | null;
      readonly requestId: string;
      /** For a line of a cart: its place and the cart's number of lines (default: 0 of 1). */
      readonly line?: number;
      readonly lines?: number;
    }
  | {
      readonly type: 'purchase';
      readonly reservationId: string;
      /** How much of the line to buy (the rest goes back to available); absent: all of it. */
      readonly quantity?: number;
      readonly idempotencyKey: string | null;
      readonly requestId: string;
    }
  | {
      readonly type: 'cancel';
      readonly reservationId: string;
      readonly idempotencyKey: string | null;
      readonly requestId: string;
    }
  | {
      readonly type: 'extend';
      readonly reservationId: string;
      readonly ttlSeconds: number;
      readonly idempotencyKey: string | null;
      readonly requestId: string;
    }
  | { readonly type: 'expire'; readonly reservationId: string }
  /**
   * A cart refused as a whole, recorded on a product whose own line would have gone through (all
   * or nothing: every product the cart named records the refusal).
   */
  | {
      readonly type: 'refuse';
      readonly reservationId: string;
      readonly quantity: number;
      readonly code: RejectionCode;
      readonly detail: string;
      /** True when the refused operation would have created the reservation: no such id exists. */
      readonly newReservation: boolean;
      readonly idempotencyKey: null;
      readonly requestId: string;
    }
  | {
      readonly type: 'adjust';
      readonly delta: number;
      readonly reason: string;
      /** Null for an item of an atomic bulk call: the call's key lives in the call's scope. */
      readonly idempotencyKey: string | null;
      readonly requestId: string;
      /**
       * An atomic bulk call refused as a whole for another item's sake: this adjustment records
       * the call's refusal (a rejected event with its delta and reason) and changes nothing.
       */
      readonly refusedAs?: { readonly code: RejectionCode; readonly detail: string };
    };

export type CommandType = Command['type'];

/** What a reservation looks like to a client; built by the engine, rendered by the API. */
export interface ReservationLineView {
  sku: string;
  quantity: number;
  purchasedQuantity?: number;
}

/** A reservation of one line also shows `sku` and `quantity`; one of several lines shows `lines` only. */
export interface ReservationView {
  id: string;
  sku?: string;
  quantity?: number;
  lines: ReservationLineView[];
  status: ReservationStatus;
  createdAt: string;
  expiresAt: string;
  purchasedAt?: string;
  cancelledAt?: string;
  expiredAt?: string;
}

/** What a product looks like to a client (POST /products, GET /products/{sku}). */
export interface ProductView {
  sku: string;
  name: string;
  createdAt: string;
  inventory: InventoryView;
}

export interface InventoryView {
  sku: string;
  total: number;
  reserved: number;
  purchased: number;
  available: number;
  activeReservations: number;
  version: number;
}

/**
 * The decided outcome of a command. This is what an idempotency record stores, so a replay
 * renders exactly the same answer.
 */
export type Outcome =
  | { readonly kind: 'reservation'; readonly created: boolean; readonly reservation: ReservationView }
  | { readonly kind: 'inventory'; readonly inventory: InventoryView }
  /** A create: `created` is 201, otherwise the same product again (200). */
  | { readonly kind: 'product'; readonly created: boolean; readonly product: ProductView }
  | {
      readonly kind: 'rejected';
      readonly code: RejectionCode;
      readonly detail: string;
      /** A cart refused for stock: every short line, with what its product had when decided. */
      readonly lines?: readonly { sku: string; requested: number; available: number }[];
      /** An atomic bulk call refused: every item refused on its own product, with its code. */
      readonly items?: readonly { sku: string; code: RejectionCode }[];
    }
  /** An expire command that found nothing to do (already final, or not due yet). */
  | { readonly kind: 'noop' }
  /** A bulk call: one result per item, in the order of the request (200). */
  | { readonly kind: 'bulk'; readonly items: readonly BulkItem[] }
  /**
   * What the key of a bulk call whose items are applied one by one remembers until every item
   * has its answer: the call started (and may have been cut short). Never an answer itself.
   */
  | { readonly kind: 'pending' };

/** One item of a bulk call as decided; the API renders its status. */
export type BulkItem =
  /** Refused by its own validation (400); `sku` is null when it is not text that can be stored. */
  | { readonly type: 'invalid'; readonly sku: string | null; readonly field: string }
  /**
   * A product this call created (201), as little as its view is made of: a thousand of them are
   * remembered under the call's key, and the view of a new product follows from these.
   */
  | {
      readonly type: 'created';
      readonly sku: string;
      readonly name: string;
      readonly stock: number;
      readonly createdAtMs: number;
    }
  /** A create that found the same product (200): the product as it was. */
  | { readonly type: 'product'; readonly product: ProductView }
  /** An adjustment applied (200). */
  | { readonly type: 'inventory'; readonly inventory: InventoryView }
  /** A rule's refusal (409) or a failure of that item alone (404, 422, 5xx). */
  | { readonly type: 'refused'; readonly sku: string; readonly code: RejectionCode | FailureCode };

/** Failures are not decisions: nothing was recorded, and a retry is safe. */
export type FailureCode =
  | 'storage_unavailable'
  | 'overloaded'
  | 'product_not_found'
  | 'reservation_not_found'
  | 'idempotency_key_reused'
  /** A request that can never succeed as asked (a cart purchase naming a SKU not in the cart). */
  | 'validation_failed'
  | 'internal_error';

export type CommandResult =
  | { readonly type: 'done'; readonly outcome: Outcome; readonly replayed: boolean }
  | {
      readonly type: 'failed';
      readonly code: FailureCode;
      readonly reason: string;
      /** For product_not_found on a cart: every SKU it named that does not exist. */
      readonly unknownSkus?: readonly string[];
    };

export type EventType =
  | 'product_created'
  | 'stock_adjusted'
  | 'reserved'
  | 'purchased'
  | 'cancelled'
  | 'expired'
  | 'released'
  | 'extended'
  | 'rejected';

/** An audit event as decided: everything but its hash. */
export interface EventDraft {
  readonly seq: number;
  readonly type: EventType;
  readonly reservationId: string | null;
  readonly quantity: number | null;
  readonly delta: number | null;
  readonly reason: string | null;
  readonly code: RejectionCode | null;
  readonly requestId: string | null;
  readonly idempotencyKey: string | null;
  readonly source: EventSource;
  readonly lateMs: number | null;
  /** For `extended`: the new expiry. */
  readonly expiresAtMs: number | null;
  readonly total: number;
  readonly reserved: number;
  readonly purchased: number;
  readonly atMs: number;
}

export interface AuditEvent extends EventDraft {
  readonly sku: string;
  readonly hash: string;
}

/**
 * A change of one reservation line, written only if the row is still `from` (its actor's view).
 * An extension keeps it active (`from` = `to`) and moves its expiry.
 */
export interface StatusChange {
  readonly id: string;
  readonly from: ReservationStatus;
  readonly to: ReservationStatus;
  readonly atMs: number;
  readonly purchasedQuantity: number | null;
  readonly expiresAtMs: number | null;
}

export interface IdempotencyRecord {
  /** Where the key lives when it is not the batch's product: a cart's route or reservation. */
  readonly scope?: string;
  readonly key: string;
  readonly fingerprint: string;
  readonly outcome: Outcome;
}

/** Everything one batch writes, committed in one transaction (G4). */
export interface BatchWrite {
  readonly sku: string;
  readonly versionBefore: number;
  /** Hash of the newest event the batch was decided against: with the version, its guard. */
  readonly hashBefore: string;
  readonly counters: Counters;
  readonly atMs: number;
  readonly inserted: readonly Reservation[];
  readonly changed: readonly StatusChange[];
  readonly events: readonly AuditEvent[];
  readonly idempotency: readonly IdempotencyRecord[];
}
