import type pg from 'pg';
import { assert, InvariantViolation } from '../engine/errors.ts';
import type { CreateProductsResult, ExistingProduct, NewProducts } from '../engine/store.ts';
import { isoOf } from '../engine/time.ts';
import { arrayLiteral } from './array-literal.ts';
import { inTransaction, storageError, type DatabasePool } from './database.ts';
import * as idempotency from './sql/idempotency.ts';
import * as products from './sql/products.ts';

// A bulk create (POST /products/bulk) is a handful of statements however many products it holds:
// one that inserts every new product with its first event, one that reads the products that were
// there already, and - with an Idempotency-Key - one that remembers the answer, all three in one
// transaction, so the answer is stored with exactly the products it reports as created.

/** products.selectProductSummaries. */
interface SummaryRow {
  sku: string;
  name: string;
  initial_stock: number;
  total: number;
  reserved: number;
  purchased: number;
  version: number;
  created_at_ms: number;
  active_reservations: number;
}

/** The unique key of idempotency_records: a key of the scope used meanwhile. */
const recordKeyConstraint = 'idempotency_records_pkey';

export async function importProducts(pool: DatabasePool, input: NewProducts): Promise<CreateProductsResult> {
  try {
    if (input.record === null) return { type: 'stored', outcome: await importOn(pool, input) };
    return await inTransaction(pool, 'BEGIN', async (client) => ({
      type: 'stored',
      outcome: await importOn(client, input),
    }));
  } catch (error) {
    // A broken invariant (of the answer, or of what the statement returned) stays one.
    if (error instanceof InvariantViolation) throw error;
    const { code, constraint } = error as { code?: string; constraint?: string };
    if (code === '23505' && constraint === recordKeyConstraint) return { type: 'key used' };
    throw storageError(error, `create ${input.products.length} products`);
  }
}

/** The statements of one import, on one connection (in a transaction when there is a record). */
async function importOn(sql: DatabasePool | pg.PoolClient, input: NewProducts) {
  const { nowMs, record } = input;
  // In SKU order (see insertProducts): the same order in every call and every instance.
  const wanted = [...input.products].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
  const key = record?.key ?? null;
  for (const p of wanted) assertFirstEvent(p, nowMs, wanted[0]!.event.requestId, key);
  const { rows } = await sql.query<{ sku: string }>(products.insertProducts, [
    arrayLiteral(wanted.map((p) => p.sku)),
    arrayLiteral(wanted.map((p) => p.name)),
    arrayLiteral(wanted.map((p) => p.stock)),
    isoOf(nowMs),
    wanted[0]?.event.requestId ?? null,
    key,
    arrayLiteral(wanted.map((p) => p.event.hash)),
  ]);
  const created = new Set(rows.map((r) => r.sku));
  const others = wanted.filter((p) => !created.has(p.sku)).map((p) => p.sku);
  const existing = others.length === 0 ? new Map<string, ExistingProduct>() : await summaries(sql, others);
  // Products are never deleted: a SKU the insert did not create is one that exists.
  assert(existing.size === others.length, 'every product a bulk create did not insert exists');
  const outcome = input.answer(created, existing);
  if (record !== null) {
    await sql.query(idempotency.insertIdempotencyRecord, [
      record.scope,
      record.key,
      record.fingerprint,
      JSON.stringify(outcome),
      isoOf(nowMs),
    ]);
  }
  return outcome;
}

/**
 * The statement writes one request id, key and time for all the products of a call and only the
 * hash of each event: each event must say exactly that, or its stored row would not be what was
 * hashed (G7).
 */
function assertFirstEvent(
  p: NewProducts['products'][number],
  nowMs: number,
  requestId: string | null,
  key: string | null,
) {
  const e = p.event;
  assert(e.sku === p.sku && e.seq === 1 && e.type === 'product_created', `product ${p.sku}: its first event`);
  assert(e.total === p.stock && e.reserved === 0 && e.purchased === 0, `product ${p.sku}: its first event's stock`);
  assert(e.atMs === nowMs && e.requestId === requestId, `product ${p.sku}: its first event is the call's`);
  assert(e.idempotencyKey === key && e.source === 'api', `product ${p.sku}: its first event carries the call's key`);
  const unset = [e.reservationId, e.quantity, e.delta, e.reason, e.code, e.lateMs, e.expiresAtMs];
  assert(
    unset.every((v) => v === null),
    `product ${p.sku}: its first event has no other field`,
  );
}

async function summaries(
  sql: DatabasePool | pg.PoolClient,
  skus: readonly string[],
): Promise<Map<string, ExistingProduct>> {
  const { rows } = await sql.query<SummaryRow>(products.selectProductSummaries, [arrayLiteral(skus)]);
  return new Map(
    rows.map((r) => [
      r.sku,
      {
        sku: r.sku,
        name: r.name,
        initialStock: r.initial_stock,
        createdAtMs: r.created_at_ms,
        counters: { total: r.total, reserved: r.reserved, purchased: r.purchased, version: r.version },
        activeReservations: r.active_reservations,
      },
    ]),
  );
}
