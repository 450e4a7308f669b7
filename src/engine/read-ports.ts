import type { AuditEvent, Reservation } from './types.ts';

// What the API reads from storage, next to the Store the engine writes through (store.ts). The
// API depends on these interfaces only; src/persistence implements them over PostgreSQL and
// src/app.ts hands the implementations to the server. Reads change nothing, so they go straight
// to the database and need no actor. Every method throws StorageError on a storage failure,
// except `ready`, whose answer is whether storage works.

/** An audit event as stored, with its place in the whole log. */
export interface LoggedEvent extends AuditEvent {
  /** The event's global `id`: the cursor of the whole log. */
  readonly position: number;
}

export interface EventPage {
  readonly events: readonly LoggedEvent[];
  /** True when at least one more event follows the last one of this page (at reading time). */
  readonly more: boolean;
}

/** Reads of stored reservations, and whether the database can serve at all. */
export interface ReadModel {
  /** Every line of a reservation, in the order the client sent them (empty: no such reservation). */
  getReservationLines(id: string): Promise<Reservation[]>;
  /** Active reservations of every product, as committed (true across instances). */
  countActiveReservations(): Promise<number>;
  /** True when the database answers and has every migration this build knows; never throws. */
  ready(expectedMigrations: readonly string[]): Promise<boolean>;
}

/**
 * Reads of the audit log, a page at a time. Cursors are decimal strings (validated by the API),
 * so an 18-digit cursor is never rounded by a double.
 */
export interface EventLog {
  /** A product's events with seq > afterSeq, in seq order; null when the product does not exist. */
  productEvents(sku: string, afterSeq: string, limit: number): Promise<EventPage | null>;
  /**
   * A reservation's events after a global position, in commit order, over all its products (a
   * cart's lines live on several); null when the reservation does not exist.
   */
  reservationEvents(id: string, afterPosition: string, limit: number): Promise<EventPage | null>;
  /**
   * The whole log after `afterPosition` (null: from the start), in commit order, holding back
   * transactions that may still be followed by an older one. Null when `afterPosition` is not the
   * position of any event.
   */
  logEvents(afterPosition: string | null, limit: number): Promise<EventPage | null>;
  /**
   * The position of the last event `logEvents` can return now (null: none yet). `logEvents` after
   * it returns exactly the events that become readable later.
   */
  logTail(): Promise<number | null>;
}
