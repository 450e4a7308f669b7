// The tests' oracle: the guarantees of DESIGN.md checked from the tables alone, in plain SQL.
// It shares no code with the engine or with `secventory verify` (src/audit/):
// it imports nothing from src/, replays the counters in SQL, and recomputes every link of each
// product's hash chain with PostgreSQL's own sha256(), so a bug in the engine's replay or hashing
// cannot hide itself by being used on both sides of the comparison. Used by the property, chaos
// and acceptance tests, by `npm run prove` and by the bench.

/** Anything that runs a query: a pg Pool or Client. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

export interface Violation {
  /** Which check found it (one of `checkNames`). */
  readonly check: CheckName;
  /** The guarantee of DESIGN.md that does not hold: 'G1' .. 'G7'. */
  readonly guarantee: string;
  readonly sku: string;
  readonly message: string;
}

/** A broken database can break something on every row; past this many per check, rows are not listed. */
export const violationsPerCheckMax = 1_000;

/** Restricts a check to the given products ($1), or to none in particular when $1 is null. */
const forSkus = (column: string) => `($1::text[] is null or ${column} = any($1::text[]))`;

/**
 * An event's canonical content, as every database stores its hash: a JSON array (no spaces) of
 * sku, seq, type, reservationId, quantity, delta, reason, code, requestId, idempotencyKey, source,
 * lateMs, total, reserved, purchased and atMs (epoch milliseconds). PostgreSQL's to_json escapes
 * a string as JSON.stringify does for any text a database can hold, and prints integers alike.
 */
const canonicalColumns = [
  'i.sku',
  'i.seq',
  'i.type',
  'i.reservation_id',
  'i.quantity',
  'i.delta',
  'i.reason',
  'i.code',
  'i.request_id',
  'i.idempotency_key',
  'i.source',
  'i.late_ms',
  'i.total',
  'i.reserved',
  'i.purchased',
  '(extract(epoch from i.at) * 1000)::bigint',
];
// An extension's new expiry joins the end when set (events without it keep their old form).
const canonicalEvent = `'[' || ${canonicalColumns
  .map((c) => `coalesce(to_json(${c})::text, 'null')`)
  .join(` || ',' || `)} || coalesce(',' || ((extract(epoch from i.expires_at) * 1000)::bigint)::text, '') || ']'`;

/** G4: a product's counter equals the sum of the quantities of its reservations in `status`. */
function counterEqualsSum(counter: 'reserved' | 'purchased', status: 'active' | 'purchased') {
  return {
    guarantee: 'G4',
    sql: `
      select p.sku, format('${counter} %s, but its ${status} reservations hold %s', p.${counter}, coalesce(s.held, 0))
             as message
        from products p
        left join (select sku, sum(${status === 'purchased' ? 'purchased_quantity' : 'quantity'}) as held
                     from reservations
                    where status = '${status}' and ${forSkus('sku')}
                    group by sku) s
          on s.sku = p.sku
       where ${forSkus('p.sku')} and p.${counter} <> coalesce(s.held, 0)`,
  };
}

/** Each check selects (sku, message) for every row that breaks its guarantee. */
const checks = {
  negative: {
    guarantee: 'G3',
    sql: `
      select p.sku, format('negative counter: total %s, reserved %s, purchased %s', p.total, p.reserved, p.purchased)
             as message
        from products p
       where ${forSkus('p.sku')} and (p.total < 0 or p.reserved < 0 or p.purchased < 0)`,
  },
  oversold: {
    guarantee: 'G1',
    sql: `
      select p.sku, format('oversold: reserved %s + purchased %s > total %s', p.reserved, p.purchased, p.total)
             as message
        from products p
       where ${forSkus('p.sku')} and p.reserved + p.purchased > p.total`,
  },
  'reserved-sum': counterEqualsSum('reserved', 'active'),
  'purchased-sum': counterEqualsSum('purchased', 'purchased'),
  // seq is unique per product, so count = version, min = 1 and max = version mean seq runs 1..version.
  'version-events': {
    guarantee: 'G4',
    sql: `
      select p.sku, format('version %s, but it has %s events, seq %s to %s',
                           p.version, coalesce(e.events, 0), e.seq_min, e.seq_max) as message
        from products p
        left join (select sku, count(*) as events, min(seq) as seq_min, max(seq) as seq_max
                     from inventory_events where ${forSkus('sku')} group by sku) e
          on e.sku = p.sku
       where ${forSkus('p.sku')}
         and not coalesce(e.events = p.version and e.seq_min = 1 and e.seq_max = p.version, false)`,
  },
  'first-event': {
    guarantee: 'G7',
    sql: `
      select e.sku, format('event %s is %s: a product''s history starts with product_created, and only there',
                           e.seq, e.type) as message
        from inventory_events e
       where ${forSkus('e.sku')} and (e.seq = 1) <> (e.type = 'product_created')`,
  },
  'created-stock': {
    guarantee: 'G7',
    sql: `
      select e.sku, format('product_created states total %s/reserved %s/purchased %s, the initial stock is %s',
                           e.total, e.reserved, e.purchased, p.initial_stock) as message
        from inventory_events e
        join products p on p.sku = e.sku
       where ${forSkus('e.sku')} and e.type = 'product_created'
         and (e.total, e.reserved, e.purchased) is distinct from (p.initial_stock, 0::bigint, 0::bigint)`,
  },
  // Each event states the counters after it: they are the previous event's, moved by this one.
  'replay-step': {
    guarantee: 'G7',
    sql: `
      select e.sku, format('event %s (%s) states total %s/reserved %s/purchased %s, '
                           'but the event before it moved by this one gives total %s/reserved %s/purchased %s',
                           e.seq, e.type, e.total, e.reserved, e.purchased, x.total, x.reserved, x.purchased) as message
        from (select i.sku, i.seq, i.type, i.quantity, i.delta, i.total, i.reserved, i.purchased,
                     lag(i.total) over w as total_before, lag(i.reserved) over w as reserved_before,
                     lag(i.purchased) over w as purchased_before
                from inventory_events i
               where ${forSkus('i.sku')}
              window w as (partition by i.sku order by i.seq)) e
       cross join lateral (
             select e.total_before + case when e.type = 'stock_adjusted' then e.delta else 0 end as total,
                    e.reserved_before + case when e.type = 'reserved' then e.quantity
                                             when e.type in ('purchased', 'released', 'cancelled', 'expired') then -e.quantity
                                             else 0 end as reserved,
                    e.purchased_before + case when e.type = 'purchased' then e.quantity else 0 end as purchased) x
       where e.type <> 'product_created'
         and (e.total, e.reserved, e.purchased) is distinct from (x.total, x.reserved, x.purchased)`,
  },
  'row-replays': {
    guarantee: 'G7',
    sql: `
      select p.sku, format('its events end in total %s/reserved %s/purchased %s, '
                           'but its row holds total %s/reserved %s/purchased %s',
                           e.total, e.reserved, e.purchased, p.total, p.reserved, p.purchased) as message
        from products p
        join inventory_events e on e.sku = p.sku and e.seq = p.version
       where ${forSkus('p.sku')}
         and (e.total, e.reserved, e.purchased) is distinct from (p.total, p.reserved, p.purchased)`,
  },
  // Every link on its own: an event's hash is sha256(previous stored hash, a newline, its canonical
  // content). With seq gap-free (version-events) that is the whole chain from the empty genesis hash.
  'hash-chain': {
    guarantee: 'G7',
    sql: `
      select c.sku, format('event %s (%s) breaks the hash chain', c.seq, c.type) as message
        from (select i.sku, i.seq, i.type, i.hash,
                     coalesce(lag(i.hash) over (partition by i.sku order by i.seq), '') as hash_before,
                     ${canonicalEvent} as canonical
                from inventory_events i
               where ${forSkus('i.sku')}) c
       where c.hash <> encode(sha256(convert_to(c.hash_before || chr(10) || c.canonical, 'UTF8')), 'hex')`,
  },
  // A reservation's history is `reserved` (of its quantity, on its product), then at most one step
  // to where its row says it is. Rejections name a reservation without moving it.
  lifecycle: {
    guarantee: 'G7',
    sql: `
      select r.sku, format('reservation %s (%s of %s) is %s, but its events are %s',
                           r.id, r.quantity, r.sku, r.status, coalesce(h.types::text, 'none')) as message
        from reservations r
        left join (select i.reservation_id, i.sku, array_agg(i.type order by i.seq) as types,
                          (array_agg(i.quantity order by i.seq))[1] as quantity_first
                     from inventory_events i
                    where i.reservation_id is not null and i.type not in ('rejected', 'extended')
                      and ${forSkus('i.sku')}
                    group by i.reservation_id, i.sku) h
          on h.reservation_id = r.id and h.sku = r.sku
       where ${forSkus('r.sku')}
         and not coalesce(h.quantity_first = r.quantity
                          and case r.status
                                when 'active' then h.types = array['reserved']
                                -- A purchase buys part or all of a line and releases the rest.
                                when 'purchased' then h.types in (array['reserved', 'purchased'],
                                                                  array['reserved', 'purchased', 'released'],
                                                                  array['reserved', 'released'])
                                else h.types = array['reserved', r.status] end,
                          false)`,
  },
  'orphan-event': {
    guarantee: 'G7',
    sql: `
      select e.sku, format('event %s (%s) names reservation %s, which does not exist', e.seq, e.type, e.reservation_id)
             as message
        from inventory_events e
       where ${forSkus('e.sku')} and e.reservation_id is not null
         and not exists (select 1 from reservations r where r.id = e.reservation_id)`,
  },
  // The three high-volume tables have no foreign key to products (migrations/0001_schema.sql).
  'no-product': {
    guarantee: 'G4',
    sql: `
      select x.sku, format('%s %s rows belong to this sku, but no product row does', count(*), x.tbl) as message
        from (select sku, 'reservations' as tbl from reservations
              union all select sku, 'inventory_events' from inventory_events
              -- A cart's keys live in their route's or reservation's scope (a '/' no SKU holds).
              union all select sku, 'idempotency_records' from idempotency_records where sku not like '/%') x
       where ${forSkus('x.sku')} and not exists (select 1 from products p where p.sku = x.sku)
       group by x.sku, x.tbl`,
  },
  // G2: a key that remembers creating a reservation names one that exists, on its product, of its quantity.
  'remembered-reservation': {
    guarantee: 'G2',
    sql: `
      select k.sku, format('key %s remembers creating reservation %s of %s, which is not in the database',
                           k.key, k.outcome -> 'reservation' ->> 'id', k.outcome -> 'reservation' ->> 'quantity')
             as message
        from idempotency_records k
       where ${forSkus('k.sku')} and k.outcome @> '{"kind": "reservation", "created": true}'::jsonb
         and not exists (select 1 from reservations r
                          where r.id = (k.outcome -> 'reservation' ->> 'id')::uuid
                            and (r.sku = k.sku or k.sku like '/%')
                            and (k.outcome -> 'reservation' ->> 'quantity' is null
                                 or r.quantity = (k.outcome -> 'reservation' ->> 'quantity')::integer))`,
  },
  // A reservation is one row per line (migrations/0004_reservation_lines.sql); a cart's lines are
  // one thing on several products. Its lines share one status...
  'cart-status': {
    guarantee: 'G4',
    sql: `
      select min(r.sku) as sku, format('reservation %s has lines in different statuses: %s', r.id,
                                       string_agg(r.sku || ' ' || r.status, ', ' order by r.line, r.sku)) as message
        from reservations r
       group by r.id
      having count(distinct r.status) > 1 and bool_or(${forSkus('r.sku')})`,
  },
  // ...and one expiry (an extension moves every line's at once)...
  'cart-expiry': {
    guarantee: 'G4',
    sql: `
      select min(r.sku) as sku, format('reservation %s has lines with different expiries: %s', r.id,
                                       string_agg(r.sku || ' ' || to_char(r.expires_at at time zone 'UTC',
                                                                          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                                  ', ' order by r.line, r.sku)) as message
        from reservations r
       group by r.id
      having count(distinct r.expires_at) > 1 and bool_or(${forSkus('r.sku')})`,
  },
  // ...its rows are its lines: one `lines` for all, and the line numbers exactly 0..lines-1.
  'cart-lines': {
    guarantee: 'G4',
    sql: `
      select min(r.sku) as sku, format('reservation %s has rows of lines %s, but says it has %s lines',
                                       r.id, array_agg(r.line order by r.line),
                                       string_agg(distinct r.lines::text, ' or ')) as message
        from reservations r
       group by r.id
      having bool_or(${forSkus('r.sku')})
         and (min(r.lines) <> max(r.lines)
              or array_agg(r.line::integer order by r.line)
                 <> (select array_agg(g order by g) from generate_series(0, max(r.lines) - 1) g))`,
  },
  // ...no line buys more than it holds (a CHECK says so too; the oracle does not take its word)...
  'line-purchase': {
    guarantee: 'G1',
    sql: `
      select r.sku, format('reservation %s bought %s of the %s its line reserved',
                           r.id, r.purchased_quantity, r.quantity) as message
        from reservations r
       where ${forSkus('r.sku')} and not (r.purchased_quantity between 0 and r.quantity)`,
  },
  // ...and each operation on it is one transaction: the events of one operation (its reservation,
  // type, instant and request) were all written by the same one.
  'cart-transaction': {
    guarantee: 'G4',
    sql: `
      select x.sku, format('a transaction wrote events of reservation %s on %s of its %s products',
                           x.reservation_id, x.products, r.lines) as message
        from (select e.reservation_id, e.tx_id, min(e.sku) as sku, count(distinct e.sku) as products
                from inventory_events e
               where e.reservation_id is not null
               group by e.reservation_id, e.tx_id) x
        join (select id, max(lines) as lines, array_agg(sku) as skus from reservations group by id) r
          on r.id = x.reservation_id
       where r.lines > 1 and x.products <> r.lines
         and ($1::text[] is null or r.skus && $1::text[])`,
  },
} as const satisfies Record<string, { guarantee: string; sql: string }>;

export type CheckName = keyof typeof checks;
export const checkNames = Object.keys(checks) as CheckName[];

/**
 * All checks as one statement, so that they see one snapshot of a database that may still be
 * written to, at the price of one round trip. Check names are fixed identifiers, not values.
 */
const oracleSql = checkNames
  .map(
    (name) => `
(select '${name}'::text as check_name, '${checks[name].guarantee}'::text as guarantee, v.sku, v.message
   from (${checks[name].sql}) v
  order by v.sku
  limit $2::integer)`,
  )
  .join('\nunion all');

/**
 * Every violation of G1 (also per reservation line), G2 (remembered reservations), G3, G4 (counters
 * equal the sums over the reservation rows, version = number of events, each reservation's lines
 * in one status with one expiry, and one transaction per operation) and G7 (events replay to the row step by step, the
 * hash chain holds, each reservation's history is a path of its lifecycle), for the given products,
 * or for the whole database when `skus` is omitted. At most violationsPerCheckMax per check.
 */
export async function databaseViolations(sql: Queryable, skus?: readonly string[]): Promise<Violation[]> {
  const { rows } = await sql.query(oracleSql, [skus === undefined ? null : [...skus], violationsPerCheckMax]);
  return rows.map((r: { check_name: CheckName; guarantee: string; sku: string; message: string }) => ({
    check: r.check_name,
    guarantee: r.guarantee,
    sku: r.sku,
    message: r.message,
  }));
}

/**
 * The violations that say a reservation is stored in part (G4): its rows disagree on status or
 * expiry, or are not one per line.
 */
export function partialReservations(violations: readonly Violation[]): Violation[] {
  const partial: readonly CheckName[] = ['cart-status', 'cart-expiry', 'cart-lines'];
  return violations.filter((v) => partial.includes(v.check));
}

/** How many products each check found broken (a product counts once per check). */
export function productsByCheck(violations: readonly Violation[]): Record<CheckName, number> {
  const counts = Object.fromEntries(checkNames.map((name) => [name, 0])) as Record<CheckName, number>;
  for (const name of checkNames) {
    counts[name] = new Set(violations.filter((v) => v.check === name).map((v) => v.sku)).size;
  }
  return counts;
}
