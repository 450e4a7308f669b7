import type pg from 'pg';

// What the database says about the proof's own products, read directly with SQL, independent of
// the app: the proof never takes the app's word for the state it left. The guarantees themselves
// are checked store-wide by the oracle (scripts/lib/oracle.ts) after every criterion. Counts are
// cast to int so they arrive as JS numbers.

export interface ProductFacts {
  readonly total: number;
  readonly reserved: number;
  readonly purchased: number;
  readonly available: number;
  readonly version: number;
  /** Sum of quantities over the product's reservation rows, by status. */
  readonly activeSum: number;
  readonly purchasedSum: number;
  readonly reservationsByStatus: Readonly<Record<string, number>>;
  readonly eventsByType: Readonly<Record<string, number>>;
  readonly rejectedByCode: Readonly<Record<string, number>>;
  /** reserved + purchased beyond total: G1 says 0. */
  readonly oversoldUnits: number;
}

const countsBy = (rows: { k: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.k, r.n]));

export async function productFacts(sql: pg.Pool, sku: string): Promise<ProductFacts> {
  const {
    rows: [p],
  } = await sql.query(
    `
    select p.total::int, p.reserved::int, p.purchased::int, p.version::int,
           coalesce((select sum(quantity) from reservations where sku = p.sku and status = 'active'), 0)::int as active_sum,
           coalesce((select sum(quantity) from reservations where sku = p.sku and status = 'purchased'), 0)::int as purchased_sum
      from products p where p.sku = $1`,
    [sku],
  );
  if (p === undefined) throw new Error(`no product row for ${sku}`);
  const statuses = await sql.query(
    `select status as k, count(*)::int as n from reservations where sku = $1 group by status`,
    [sku],
  );
  const types = await sql.query(
    `select type as k, count(*)::int as n from inventory_events where sku = $1 group by type`,
    [sku],
  );
  const codes = await sql.query(
    `select code as k, count(*)::int as n from inventory_events where sku = $1 and type = 'rejected' group by code`,
    [sku],
  );
  return {
    total: p.total,
    reserved: p.reserved,
    purchased: p.purchased,
    available: p.total - p.reserved - p.purchased,
    version: p.version,
    activeSum: p.active_sum,
    purchasedSum: p.purchased_sum,
    reservationsByStatus: countsBy(statuses.rows),
    eventsByType: countsBy(types.rows),
    rejectedByCode: countsBy(codes.rows),
    oversoldUnits: Math.max(0, p.reserved + p.purchased - p.total),
  };
}

/** How many transactions wrote a product's events after its creation: the engine's batching at work. */
export async function transactionsOf(sql: pg.Pool, sku: string): Promise<{ transactions: number; events: number }> {
  const {
    rows: [r],
  } = await sql.query(
    `
    select count(distinct tx_id)::int as transactions, count(*)::int as events
      from inventory_events where sku = $1 and type <> 'product_created'`,
    [sku],
  );
  return { transactions: r.transactions, events: r.events };
}

/** The stored outcome of an Idempotency-Key (what a replay renders), or null when none is stored. */
export async function storedOutcome(sql: pg.Pool, sku: string, key: string): Promise<any> {
  const {
    rows: [r],
  } = await sql.query(`select outcome from idempotency_records where sku = $1 and key = $2`, [sku, key]);
  return r === undefined ? null : r.outcome;
}

export async function reservationRows(
  sql: pg.Pool,
  skus: readonly string[],
): Promise<Map<string, { sku: string; quantity: number; status: string }>> {
  const { rows } = await sql.query(
    `select id::text, sku, quantity, status from reservations where sku = any($1::text[])`,
    [skus],
  );
  return new Map(rows.map((r) => [r.id, { sku: r.sku, quantity: r.quantity, status: r.status }]));
}

export async function postgresVersion(sql: pg.Pool): Promise<string> {
  const {
    rows: [r],
  } = await sql.query(
    `select current_setting('server_version') as v, current_setting('fsync') as fsync, current_setting('synchronous_commit') as sc`,
  );
  return `PostgreSQL ${r.v} (fsync=${r.fsync}, synchronous_commit=${r.sc})`;
}
