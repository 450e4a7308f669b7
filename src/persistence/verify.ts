import type pg from 'pg';
import { idempotencyRetentionMs } from '../engine/limits.ts';
import { createPool, inTransaction } from './database.ts';
import { eventFromRow, type EventRow } from './event-log.ts';
import * as sql from './sql/verify.ts';
import { checkReservationHistory, type ReservationHistory } from './verify-lifecycle.ts';
import { ProductReplay, type ProductRow } from './verify-replay.ts';

export interface Violation {
  /** The guarantee of docs/DESIGN.md that does not hold: 'G1' .. 'G7'. */
  guarantee: string;
  /** The product it concerns; null when it concerns none in particular. */
  sku: string | null;
  reservationId?: string;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  products: number;
  events: number;
  reservations: number;
  durationMs: number;
  violations: Violation[];
}

export interface VerifyOptions {
  /** Told what verify is doing, now and then on a long run (at most every progressIntervalMs). */
  onProgress?: (line: string) => void;
}

// Bounds of a verify run. Memory is what a page of events, a piece of products and the listed
// violations take, whatever the size of the database.

/** A page of events is a few megabytes and a few milliseconds of hashing. */
const eventsPerPage = 5_000;
/** A broken database can break something on every row; past this many, violations are only counted. */
export const violationsListedMax = 1_000;
const progressIntervalMs = 2_000;
/**
 * The reservation cursor's first fetch sorts and groups the whole history, which takes minutes
 * only on a very large database; past this, verify fails rather than hang.
 */
const statementTimeoutMs = 15 * 60_000;

/**
 * Checks G1-G4 and G7 on a live database, as of one snapshot: every product row against its
 * reservations and its replayed events (seq, counters, hash chain), every reservation's history
 * against the lifecycle machine, every row against the existence of its product, and G2 on the
 * idempotency keys of effects. Reads everything in
 * bounded pieces. Throws when the database cannot be read; a finding is never an exception.
 */
export async function verifyDatabase(databaseUrl: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const startedMs = performance.now();
  const say = options.onProgress ?? (() => {});
  const violations: Violation[] = [];
  let unlisted = 0;
  const report = (v: Violation) => {
    if (violations.length < violationsListedMax) violations.push(v);
    else unlisted++;
  };
  const pool = createPool({
    connectionString: databaseUrl,
    poolSize: 1,
    connectionAcquireTimeoutMs: 10_000,
    statementTimeoutMs,
    queryTimeoutMs: statementTimeoutMs + 30_000,
    idleInTransactionTimeoutMs: 60_000,
  }, (error) => say(`an idle database connection failed: ${error.message}`));

  try {
    const checked = await inTransaction(pool, sql.beginSnapshot, async (client) => {
      await client.query(sql.planCursorsForAllRows);
      const sizes = (await client.query(sql.selectSizes)).rows[0] as { products: number; reservations: number; events: number };
      const progress = new Progress(say, startedMs);
      say(`verifying ${sizes.products} products, ${sizes.events} events and ${sizes.reservations} reservations as of one snapshot`);
      const { products, events } = await checkProducts(client, report, progress, sizes.events);
      say(`checked ${products} products and ${events} events; checking reservation histories`);
      const reservations = await checkReservations(client, report, progress, sizes.reservations);
      await checkRowsWithoutProduct(client, report);
      await checkOrphanEvents(client, report);
      await checkRepeatedEffects(client, report);
      return { products, events, reservations };
    });
    if (unlisted > 0) say(`${unlisted} further violations are not listed (only the first ${violationsListedMax} are)`);
    return { ok: violations.length === 0, ...checked, durationMs: Math.round(performance.now() - startedMs), violations };
  } finally {
    await pool.end();
  }
}

/** Says how far verify got, at most once per progressIntervalMs. */
class Progress {
  private lastMs = performance.now();
  constructor(
    private readonly say: (line: string) => void,
    private readonly startedMs: number,
  ) {}

  now(line: () => string): void {
    const nowMs = performance.now();
    if (nowMs - this.lastMs < progressIntervalMs) return;
    this.lastMs = nowMs;
    this.say(`${line()}, ${((nowMs - this.startedMs) / 1000).toFixed(1)} s`);
  }
}

const percent = (done: number, total: number) => `${total === 0 ? 100 : Math.floor((100 * done) / total)}%`;

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

/** Products in pieces from a cursor; each piece's events in keyset pages, replayed per product. */
async function checkProducts(client: pg.PoolClient, report: (v: Violation) => void, progress: Progress, eventsTotal: number) {
  let products = 0;
  let events = 0;
  await client.query(sql.declareProducts);
  for (;;) {
    const { rows } = await client.query<ProductDbRow>(sql.fetchProducts);
    if (rows.length === 0) break;
    const replays = new Map(rows.map((r) => [r.sku, new ProductReplay(productFromRow(r), report)]));
    const firstSku = rows[0]!.sku;
    const lastSku = rows.at(-1)!.sku;
    let after = { sku: firstSku, seq: sql.seqBeforeAll };
    for (;;) {
      const page = await client.query<EventRow>({ name: 'verify_event_page', text: sql.selectEventPage, values: [firstSku, lastSku, after.sku, after.seq, eventsPerPage] });
      for (const row of page.rows) {
        // An event of no product is reported once per sku by checkRowsWithoutProduct.
        replays.get(row.sku)?.add(eventFromRow(row));
      }
      events += page.rows.length;
      progress.now(() => `${events} of ${eventsTotal} events (${percent(events, eventsTotal)}) checked`);
      const last = page.rows.at(-1);
      if (last === undefined || page.rows.length < eventsPerPage) break;
      after = { sku: last.sku, seq: String(last.seq) };
    }
    for (const replay of replays.values()) replay.finish();
    products += rows.length;
  }
  await client.query('close verify_products');
  return { products, events };
}

interface ReservationDbRow {
  id: string;
  sku: string;
  quantity: number;
  status: string;
  types: string[];
  /** bigint[] arrives as strings. */
  seqs: string[];
  quantities: (number | null)[];
  same_sku: boolean;
}

async function checkReservations(client: pg.PoolClient, report: (v: Violation) => void, progress: Progress, reservationsTotal: number): Promise<number> {
  let reservations = 0;
  await client.query(sql.declareReservations);
  for (;;) {
    const { rows } = await client.query<ReservationDbRow>(sql.fetchReservations);
    if (rows.length === 0) break;
    for (const r of rows) {
      const history: ReservationHistory = {
        id: r.id,
        sku: r.sku,
        quantity: r.quantity,
        status: r.status,
        types: r.types,
        seqs: r.seqs.map(Number),
        quantities: r.quantities,
        sameSku: r.same_sku,
      };
      for (const v of checkReservationHistory(history)) report(v);
    }
    reservations += rows.length;
    progress.now(() => `${reservations} of ${reservationsTotal} reservation histories (${percent(reservations, reservationsTotal)}) checked`);
  }
  await client.query('close verify_reservations');
  return reservations;
}

async function checkRowsWithoutProduct(client: pg.PoolClient, report: (v: Violation) => void): Promise<void> {
  const { rows } = await client.query(sql.selectRowsWithoutProduct, [violationsListedMax]);
  for (const r of rows) {
    // An event of no product breaks the log; a reservation or an idempotency record of no product
    // was written outside the product's transaction.
    const guarantee = r.table === 'inventory_events' ? 'G7' : 'G4';
    report({ guarantee, sku: r.sku, message: `${r.rows} ${r.table} rows belong to this sku, but no product row does` });
  }
}

async function checkOrphanEvents(client: pg.PoolClient, report: (v: Violation) => void): Promise<void> {
  const { rows } = await client.query(sql.selectOrphanEvents, [violationsListedMax]);
  for (const o of rows) {
    report({ guarantee: 'G7', sku: o.sku, reservationId: o.reservation_id, message: `seq ${o.seq} (${o.type}) names reservation ${o.reservation_id}, which does not exist` });
  }
}

async function checkRepeatedEffects(client: pg.PoolClient, report: (v: Violation) => void): Promise<void> {
  const { rows } = await client.query(sql.selectRepeatedEffects, [idempotencyRetentionMs, violationsListedMax]);
  const hours = idempotencyRetentionMs / 3_600_000;
  for (const r of rows) {
    report({ guarantee: 'G2', sku: r.sku, message: `Idempotency-Key ${JSON.stringify(r.idempotency_key)} took effect twice within ${hours} h: seq ${r.previous_seq} and seq ${r.seq}` });
  }
}
