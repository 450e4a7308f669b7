import type pg from 'pg';
import { eventsPerPage, verifyStatementTimeoutMs } from '../engine/limits.ts';
import type { AuditEvent } from '../engine/types.ts';
import { createPool, inTransaction } from './database.ts';
import { eventFromRow, type EventRow } from './event-log.ts';
import { primaryUrl } from './primary-search.ts';
import * as sql from './sql/verify.ts';

/** A product row as the audit reads it, with the sums of its reservation rows. */
export interface ProductRow {
  readonly sku: string;
  readonly initialStock: number;
  readonly total: number;
  readonly reserved: number;
  readonly purchased: number;
  readonly version: number;
  /** Sum of the quantities of its active reservations. */
  readonly reservedSum: number;
  /** Sum of the quantities of its purchased reservations. */
  readonly purchasedSum: number;
}

/** A reservation row with its lifecycle events (reserved, purchased, cancelled, expired) in seq order. */
export interface ReservationHistory {
  readonly id: string;
  readonly sku: string;
  readonly quantity: number;
  readonly status: string;
  /** How much of the line was bought, once purchased. */
  readonly purchasedQuantity: number | null;
  readonly types: readonly string[];
  readonly seqs: readonly number[];
  readonly quantities: readonly (number | null)[];
  /** False when one of its events belongs to another product. */
  readonly sameSku: boolean;
}

export interface SnapshotSizes {
  readonly products: number;
  readonly reservations: number;
  readonly events: number;
}

/** Rows of one table whose product does not exist, counted per sku. */
export interface RowsWithoutProduct {
  readonly table: 'inventory_events' | 'reservations' | 'idempotency_records';
  readonly sku: string;
  readonly rows: number;
}

/** An event naming a reservation that does not exist. */
export interface OrphanEvent {
  readonly sku: string;
  readonly seq: number;
  readonly type: string;
  readonly reservationId: string;
}

/** An effect under an (sku, Idempotency-Key) that an earlier effect already had. */
export interface RepeatedEffect {
  readonly sku: string;
  readonly idempotencyKey: string;
  readonly seq: number;
  readonly previousSeq: number;
}

/** The rows of one reservation that are not one set of lines in one status, in line order. */
export interface ReservationLines {
  readonly id: string;
  readonly skus: readonly string[];
  readonly statuses: readonly string[];
  /** Each row's `line`. */
  readonly lineNumbers: readonly number[];
  /** Each row's `lines`: how many lines the row says its reservation has. */
  readonly lines: readonly number[];
}

/** A line that bought more than it reserved (or a negative amount). */
export interface OverboughtLine {
  readonly id: string;
  readonly sku: string;
  readonly quantity: number;
  readonly purchasedQuantity: number;
}

/** A transaction that wrote events of a reservation of several lines on some of its products only. */
export interface SplitCartOperation {
  readonly reservationId: string;
  /** The types of its events, comma-separated. */
  readonly type: string;
  readonly atMs: number;
  /** The products of its events, with each event's seq. */
  readonly skus: readonly string[];
  readonly seqs: readonly number[];
  /** How many products the reservation has. */
  readonly lines: number;
}

interface IrregularLinesDbRow {
  id: string;
  skus: string[];
  statuses: string[];
  line_numbers: number[];
  lines: number[];
}

interface OverboughtLineDbRow {
  id: string;
  sku: string;
  quantity: number;
  purchased_quantity: number;
}

interface SplitCartOperationDbRow {
  reservation_id: string;
  type: string;
  /** bigint arrives as a string. */
  at_ms: string;
  skus: string[];
  /** bigint[] arrives as strings. */
  seqs: string[];
  lines: number;
}

interface OrphanEventDbRow {
  sku: string;
  seq: number;
  type: string;
  reservation_id: string;
}

interface RepeatedEffectDbRow {
  sku: string;
  idempotency_key: string;
  seq: number;
  previous_seq: number;
}

interface ProductDbRow {
  sku: string;
  initial_stock: number;
  total: number;
  reserved: number;
  purchased: number;
  version: number;
  reserved_sum: number;
  purchased_sum: number;
}

interface ReservationDbRow {
  id: string;
  sku: string;
  quantity: number;
  status: string;
  purchased_quantity: number | null;
  types: string[];
  /** bigint[] arrives as strings. */
  seqs: string[];
  quantities: (number | null)[];
  same_sku: boolean;
}

/**
 * Runs `read` on one snapshot of the database: a REPEATABLE READ READ ONLY transaction on a
 * connection of its own, so everything `read` sees is as of one moment, whatever is being written
 * meanwhile. Throws when the database cannot be read.
 */
export async function readAuditSnapshot<T>(
  databaseUrl: string,
  onIdleError: (error: Error) => void,
  read: (snapshot: AuditSnapshot) => Promise<T>,
): Promise<T> {
  const pool = createPool(
    {
      // The primary's snapshot when DATABASE_URL names several hosts: the newest committed state.
      connectionString: await primaryUrl(databaseUrl),
      poolSize: 1,
      connectionAcquireTimeoutMs: 10_000,
      statementTimeoutMs: verifyStatementTimeoutMs,
      queryTimeoutMs: verifyStatementTimeoutMs + 30_000,
      idleInTransactionTimeoutMs: 60_000,
    },
    onIdleError,
  );
  try {
    return await inTransaction(pool, sql.beginSnapshot, async (client) => {
      await client.query(sql.planCursorsForAllRows);
      return read(new AuditSnapshot(client));
    });
  } finally {
    await pool.end();
  }
}

/** The rows of one snapshot, big results in bounded pieces. Valid only inside readAuditSnapshot. */
export class AuditSnapshot {
  constructor(private readonly client: pg.PoolClient) {}

  async sizes(): Promise<SnapshotSizes> {
    return (await this.client.query<SnapshotSizes>(sql.selectSizes)).rows[0]!;
  }

  /** Every product in sku order, a piece at a time. Read each piece's events before the next piece. */
  async *productPieces(): AsyncGenerator<readonly ProductRow[]> {
    await this.client.query(sql.declareProducts);
    for (;;) {
      const { rows } = await this.client.query<ProductDbRow>(sql.fetchProducts);
      if (rows.length === 0) break;
      yield rows.map(productFromRow);
    }
    await this.client.query('close verify_products');
  }

  /** The events of the products of `piece` (and of no product, in its sku range) in (sku, seq) order, in pages. */
  async *eventPages(piece: readonly ProductRow[]): AsyncGenerator<readonly AuditEvent[]> {
    const firstSku = piece[0]!.sku;
    const lastSku = piece.at(-1)!.sku;
    let after = { sku: firstSku, seq: sql.seqBeforeAll };
    for (;;) {
      const page = await this.client.query<EventRow>({
        name: 'verify_event_page',
        text: sql.selectEventPage,
        values: [firstSku, lastSku, after.sku, after.seq, eventsPerPage],
      });
      yield page.rows.map(eventFromRow);
      const last = page.rows.at(-1);
      if (last === undefined || page.rows.length < eventsPerPage) break;
      after = { sku: last.sku, seq: String(last.seq) };
    }
  }

  /** Every reservation with its lifecycle events, a piece at a time. */
  async *reservationPieces(): AsyncGenerator<readonly ReservationHistory[]> {
    await this.client.query(sql.declareReservations);
    for (;;) {
      const { rows } = await this.client.query<ReservationDbRow>(sql.fetchReservations);
      if (rows.length === 0) break;
      yield rows.map(reservationFromRow);
    }
    await this.client.query('close verify_reservations');
  }

  async rowsWithoutProduct(skusMax: number): Promise<RowsWithoutProduct[]> {
    return (await this.client.query<RowsWithoutProduct>(sql.selectRowsWithoutProduct, [skusMax])).rows;
  }

  async orphanEvents(eventsMax: number): Promise<OrphanEvent[]> {
    const { rows } = await this.client.query<OrphanEventDbRow>(sql.selectOrphanEvents, [eventsMax]);
    return rows.map((r) => ({ sku: r.sku, seq: r.seq, type: r.type, reservationId: r.reservation_id }));
  }

  /** Reservations whose rows disagree on status or are not lines 0..lines-1 (at most `reservationsMax`). */
  async irregularReservationLines(reservationsMax: number): Promise<ReservationLines[]> {
    const { rows } = await this.client.query<IrregularLinesDbRow>(sql.selectIrregularReservationLines, [
      reservationsMax,
    ]);
    return rows.map((r) => ({
      id: r.id,
      skus: r.skus,
      statuses: r.statuses,
      lineNumbers: r.line_numbers,
      lines: r.lines,
    }));
  }

  async overboughtLines(linesMax: number): Promise<OverboughtLine[]> {
    const { rows } = await this.client.query<OverboughtLineDbRow>(sql.selectOverboughtLines, [linesMax]);
    return rows.map((r) => ({ id: r.id, sku: r.sku, quantity: r.quantity, purchasedQuantity: r.purchased_quantity }));
  }

  async splitCartOperations(operationsMax: number): Promise<SplitCartOperation[]> {
    const { rows } = await this.client.query<SplitCartOperationDbRow>(sql.selectSplitCartOperations, [operationsMax]);
    return rows.map((r) => ({
      reservationId: r.reservation_id,
      type: r.type,
      atMs: Number(r.at_ms),
      skus: r.skus,
      // bigint[] arrives as strings.
      seqs: r.seqs.map(Number),
      lines: r.lines,
    }));
  }

  /** Repeated effects within `retentionMs` of the previous one under the same key. */
  async repeatedEffects(retentionMs: number, effectsMax: number): Promise<RepeatedEffect[]> {
    const { rows } = await this.client.query<RepeatedEffectDbRow>(sql.selectRepeatedEffects, [retentionMs, effectsMax]);
    return rows.map((r) => ({
      sku: r.sku,
      idempotencyKey: r.idempotency_key,
      seq: r.seq,
      previousSeq: r.previous_seq,
    }));
  }
}

function productFromRow(r: ProductDbRow): ProductRow {
  return {
    sku: r.sku,
    initialStock: r.initial_stock,
    total: r.total,
    reserved: r.reserved,
    purchased: r.purchased,
    version: r.version,
    reservedSum: r.reserved_sum,
    purchasedSum: r.purchased_sum,
  };
}

function reservationFromRow(r: ReservationDbRow): ReservationHistory {
  return {
    id: r.id,
    sku: r.sku,
    quantity: r.quantity,
    status: r.status,
    purchasedQuantity: r.purchased_quantity,
    types: r.types,
    seqs: r.seqs.map(Number),
    quantities: r.quantities,
    sameSku: r.same_sku,
  };
}
