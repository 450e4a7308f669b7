import type { EventLog, EventPage, LoggedEvent } from '../engine/read-ports.ts';
import type { EventSource, EventType, RejectionCode } from '../engine/types.ts';
import { guarded, type DatabasePool } from './database.ts';
import * as events from './sql/events.ts';
import * as products from './sql/products.ts';
import * as reservations from './sql/reservations.ts';

/** A row selected with `eventColumns` of sql/events.ts. */
export interface EventRow {
  position: number;
  sku: string;
  seq: number;
  type: string;
  reservation_id: string | null;
  quantity: number | null;
  delta: number | null;
  reason: string | null;
  code: string | null;
  request_id: string | null;
  idempotency_key: string | null;
  source: string;
  late_ms: number | null;
  total: number;
  reserved: number;
  purchased: number;
  at_ms: number;
  hash: string;
  expires_at_ms: number | null;
}

// The schema's CHECK constraints keep `type` and `source` to the engine's values; `code` is
// written only by the engine. The casts state that, they do not check it (verify does).
export function eventFromRow(row: EventRow): LoggedEvent {
  return {
    position: row.position,
    sku: row.sku,
    seq: row.seq,
    type: row.type as EventType,
    reservationId: row.reservation_id,
    quantity: row.quantity,
    delta: row.delta,
    reason: row.reason,
    code: row.code as RejectionCode | null,
    requestId: row.request_id,
    idempotencyKey: row.idempotency_key,
    source: row.source as EventSource,
    lateMs: row.late_ms,
    expiresAtMs: row.expires_at_ms,
    total: row.total,
    reserved: row.reserved,
    purchased: row.purchased,
    atMs: row.at_ms,
    hash: row.hash,
  };
}

/** `limit + 1` rows were asked for: the extra one only says that another page exists. */
function pageOf(rows: readonly EventRow[], limit: number): EventPage {
  return { events: rows.slice(0, limit).map(eventFromRow), more: rows.length > limit };
}

/**
 * The engine's EventLog over PostgreSQL. Cursors arrive as decimal strings (validated by the API)
 * and travel to PostgreSQL as text cast to bigint, so an 18-digit cursor is never rounded by a double.
 */
export class PgEventLog implements EventLog {
  constructor(private readonly pool: DatabasePool) {}

  productEvents(sku: string, afterSeq: string, limit: number): Promise<EventPage | null> {
    return guarded('read product events', async () => {
      const { rows } = await this.pool.query<EventRow>({
        name: 'select_product_events',
        text: events.selectProductEvents,
        values: [sku, afterSeq, limit + 1],
      });
      // Every product has its product_created event, so only an empty page can mean "no product".
      if (rows.length > 0) return pageOf(rows, limit);
      const product = await this.pool.query(products.selectProductVersion, [sku]);
      return product.rowCount === 0 ? null : pageOf(rows, limit);
    });
  }

  /** A reservation's events after a position; null when the reservation does not exist. */
  reservationEvents(id: string, afterPosition: string, limit: number): Promise<EventPage | null> {
    return guarded('read reservation events', async () => {
      const { rows } = await this.pool.query<EventRow>({
        name: 'select_reservation_events',
        text: events.selectReservationEvents,
        values: [id, afterPosition, limit + 1],
      });
      if (rows.length > 0) return pageOf(rows, limit);
      const reservation = await this.pool.query(reservations.selectReservationSkus, [id]);
      return reservation.rowCount === 0 ? null : pageOf(rows, limit);
    });
  }

  /** sql/events.ts says how transactions that may still be followed by an older one are held back. */
  logEvents(afterPosition: string | null, limit: number): Promise<EventPage | null> {
    return guarded('read the event log', async () => {
      if (afterPosition === null) {
        const { rows } = await this.pool.query<EventRow>({
          name: 'select_log_head',
          text: events.selectLogHead,
          values: [limit + 1],
        });
        return pageOf(rows, limit);
      }
      const { rows } = await this.pool.query<EventRow>({
        name: 'select_log_after',
        text: events.selectLogAfter,
        values: [afterPosition, limit + 1],
      });
      if (rows.length > 0) return pageOf(rows, limit);
      const cursor = await this.pool.query<{ found: boolean }>(events.selectEventExists, [afterPosition]);
      return cursor.rows[0]?.found === true ? pageOf(rows, limit) : null;
    });
  }

  logTail(): Promise<number | null> {
    return guarded('read the end of the event log', async () => {
      const { rows } = await this.pool.query<{ position: number }>({
        name: 'select_log_tail',
        text: events.selectLogTail,
      });
      return rows[0]?.position ?? null;
    });
  }
}
