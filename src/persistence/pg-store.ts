import { assert, StorageError } from '../engine/errors.ts';
import { conflictRetriesMax } from '../engine/limits.ts';
import { isReservationStatus } from '../engine/lifecycle.ts';
import type {
  ClaimResult,
  CommitResult,
  CreateProductResult,
  CreateProductsResult,
  DueReservation,
  NewProduct,
  NewProducts,
  ClaimedKey,
  ScopedKey,
  Store,
} from '../engine/store.ts';
import { isoOf } from '../engine/time.ts';
import type { BatchWrite, IdempotencyRecord, Outcome, ProductState, Reservation } from '../engine/types.ts';
import { guarded, type DatabasePool } from './database.ts';
import type { EngineObserver } from '../engine/observer.ts';
import { GroupCommitter } from './group-commit.ts';
import { importProducts } from './product-import.ts';
import * as products from './sql/products.ts';
import * as reservations from './sql/reservations.ts';
import * as idempotency from './sql/idempotency.ts';

export interface ReservationRow {
  id: string;
  sku: string;
  quantity: number;
  line: number;
  lines: number;
  purchased_quantity: number | null;
  status: string;
  created_at_ms: number;
  expires_at_ms: number;
  finished_at_ms: number | null;
}

export function reservationFromRow(row: ReservationRow): Reservation {
  assert(isReservationStatus(row.status), `reservation ${row.id} has a known status`);
  return {
    id: row.id,
    sku: row.sku,
    quantity: row.quantity,
    line: row.line,
    lines: row.lines,
    purchasedQuantity: row.purchased_quantity,
    status: row.status,
    createdAtMs: row.created_at_ms,
    expiresAtMs: row.expires_at_ms,
    finishedAtMs: row.finished_at_ms,
  };
}

/** products.selectProductWithActiveReservations: a product, the head of its chain, its active reservations. */
interface ProductRow {
  sku: string;
  name: string;
  initial_stock: number;
  total: number;
  reserved: number;
  purchased: number;
  version: number;
  created_at_ms: number;
  /** Null only if the product's newest event is missing, which the assert below refuses. */
  last_hash: string | null;
  /** One [id, quantity, created_at_ms, expires_at_ms, line, lines] per active reservation. */
  active: [string, number, number, number, number, number][];
}

/** idempotency.selectIdempotencyRecords: outcome is jsonb, the Outcome the record was stored with. */
interface IdempotencyRow {
  scope: string;
  key: string;
  fingerprint: string;
  outcome: IdempotencyRecord['outcome'];
}

function productFromRow(row: ProductRow): ProductState {
  const { sku, last_hash: lastHash } = row;
  assert(lastHash !== null, `product ${sku}: its newest event exists`);
  const active = new Map<string, Reservation>();
  for (const [id, quantity, createdAtMs, expiresAtMs, line, lines] of row.active) {
    active.set(id, {
      id,
      sku,
      quantity,
      line,
      lines,
      purchasedQuantity: null,
      status: 'active',
      createdAtMs,
      expiresAtMs,
      finishedAtMs: null,
    });
  }
  let reservedSum = 0;
  for (const r of active.values()) reservedSum += r.quantity;
  assert(reservedSum === row.reserved, `product ${sku}: reserved equals the sum of its active reservations`);
  return {
    sku,
    name: row.name,
    initialStock: row.initial_stock,
    createdAtMs: row.created_at_ms,
    counters: { total: row.total, reserved: row.reserved, purchased: row.purchased, version: row.version },
    lastHash,
    active,
  };
}

/** The engine's Store over PostgreSQL. */
export class PgStore implements Store {
  private readonly committer: GroupCommitter;

  constructor(
    private readonly pool: DatabasePool,
    observer: EngineObserver = {},
  ) {
    this.committer = new GroupCommitter(pool, (event) => observer.commitStatement?.(event));
  }

  loadProduct(sku: string): Promise<ProductState | null> {
    return guarded('load product', async () => {
      const { rows } = await this.pool.query<ProductRow>({
        name: 'select_product_with_active',
        text: products.selectProductWithActiveReservations,
        values: [sku],
      });
      const row = rows[0];
      return row === undefined ? null : productFromRow(row);
    });
  }

  async createProduct(input: NewProduct): Promise<CreateProductResult> {
    const { sku, name, stock, nowMs, event, idempotency } = input;
    // The row's idempotency_key is the one the event's hash was computed over.
    const key = idempotency?.key ?? null;
    assert(event.idempotencyKey === key, `product ${sku}: its first event carries its record's key`);
    const values = [
      sku,
      name,
      stock,
      isoOf(nowMs),
      event.requestId,
      event.hash,
      key,
      idempotency?.fingerprint ?? null,
      idempotency === null ? null : JSON.stringify(idempotency.outcome),
    ];
    const { rows } = await guarded('create product', () =>
      this.pool.query<{ created: number }>(products.insertProduct, values),
    );
    const created = rows[0]?.created;
    assert(created === 0 || created === 1, `product ${sku}: its insert says whether it created the row`);
    const product = await this.loadProduct(sku);
    assert(product !== null, `product ${sku} exists after its insert`);
    return { type: created === 1 ? 'created' : 'exists', product };
  }

  productVersion(sku: string): Promise<number | null> {
    return guarded('product version', async () => {
      const { rows } = await this.pool.query<{ version: number }>({
        name: 'select_product_version',
        text: products.selectProductVersion,
        values: [sku],
      });
      return rows[0]?.version ?? null;
    });
  }

  findReservations(sku: string, ids: readonly string[]): Promise<Reservation[]> {
    return guarded('find reservations', async () => {
      const { rows } = await this.pool.query<ReservationRow>({
        name: 'select_reservations_of_product',
        text: reservations.selectReservationsOfProduct,
        values: [sku, ids],
      });
      return rows.map(reservationFromRow);
    });
  }

  findReservationSkus(id: string): Promise<string[]> {
    return guarded('find reservation skus', async () => {
      const { rows } = await this.pool.query<{ sku: string }>({
        name: 'select_reservation_skus',
        text: reservations.selectReservationSkus,
        values: [id],
      });
      return rows.map((row) => row.sku);
    });
  }

  findReservationLines(id: string): Promise<Reservation[]> {
    return guarded('find reservation lines', async () => {
      const { rows } = await this.pool.query<ReservationRow>({
        name: 'select_reservation',
        text: reservations.selectReservation,
        values: [id],
      });
      return rows.map(reservationFromRow);
    });
  }

  findRecords(keys: readonly ScopedKey[]): Promise<IdempotencyRecord[]> {
    return guarded('find idempotency records', async () => {
      const { rows } = await this.pool.query<IdempotencyRow>({
        name: 'select_idempotency_records',
        text: idempotency.selectIdempotencyRecords,
        values: [keys.map((k) => k.scope), keys.map((k) => k.key)],
      });
      return rows.map((row) => ({
        scope: row.scope,
        key: row.key,
        fingerprint: row.fingerprint,
        outcome: row.outcome,
      }));
    });
  }

  commitAllOrNothing(writes: readonly BatchWrite[], after?: Promise<unknown>): Promise<CommitResult> {
    return this.committer.commitAllOrNothing(writes, after);
  }

  commitBatch(write: BatchWrite): Promise<CommitResult> {
    return this.committer.commit(write);
  }

  createProducts(input: NewProducts): Promise<CreateProductsResult> {
    return importProducts(this.pool, input);
  }

  async claimKey(key: ClaimedKey, outcome: Outcome, atMs: number): Promise<ClaimResult> {
    const values = [key.scope, key.key, key.fingerprint, JSON.stringify(outcome), isoOf(atMs)];
    // A claim that meets another's uncommitted claim waits for it; should that one roll back, the
    // key is free again and the next round claims it.
    for (let attempt = 0; attempt <= conflictRetriesMax; attempt++) {
      const { rows } = await guarded('claim idempotency key', () =>
        this.pool.query(idempotency.insertIdempotencyRecordUnlessUsed, values),
      );
      if (rows.length === 1) return { type: 'claimed' };
      const [record] = await this.findRecords([key]);
      if (record !== undefined) return { type: 'used', record };
    }
    throw new StorageError(`key ${key.key} in ${key.scope} neither claimed nor found`, true, undefined);
  }

  async completeKey(key: ClaimedKey, outcome: Outcome): Promise<void> {
    const values = [key.scope, key.key, key.fingerprint, JSON.stringify(outcome)];
    const result = await guarded('complete idempotency record', () =>
      this.pool.query(idempotency.updateIdempotencyOutcome, values),
    );
    assert(result.rowCount === 1, `the claimed key ${key.key} in ${key.scope} is completed once`);
  }

  findDueReservations(nowMs: number, limit: number): Promise<DueReservation[]> {
    return guarded('find due reservations', async () => {
      const { rows } = await this.pool.query<DueReservation>({
        name: 'select_due_reservations',
        text: reservations.selectDueReservations,
        values: [isoOf(nowMs), limit],
      });
      return rows;
    });
  }

  deleteIdempotencyRecordsBefore(beforeMs: number, limit: number): Promise<number> {
    return guarded('delete idempotency records', async () => {
      const result = await this.pool.query(idempotency.deleteIdempotencyRecordsBefore, [isoOf(beforeMs), limit]);
      return result.rowCount ?? 0;
    });
  }
}
