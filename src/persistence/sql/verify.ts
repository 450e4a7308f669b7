// Statements of `secventory verify`. They run in one REPEATABLE READ READ ONLY transaction, so
// every statement sees the same snapshot of a live database: counters, reservations and events
// are compared as of one moment, whatever is being written meanwhile. Big results are read in
// bounded pieces (a server-side cursor or keyset pages), never whole.

import { productsPerFetch, reservationsPerFetch } from '../../engine/limits.ts';
import { eventColumns } from './events.ts';

export const beginSnapshot = 'begin isolation level repeatable read read only';

/**
 * Verify reads every cursor to its end. By default the planner optimises a cursor for its first
 * tenth, which for the reservation histories means a merge of two index scans in random uuid
 * order: a random heap read per row. Planned for all rows, it reads the tables sequentially.
 */
export const planCursorsForAllRows = 'set local cursor_tuple_fraction = 1.0';

export const selectSizes = `
select (select count(*) from products)::bigint as products,
       (select count(*) from reservations)::bigint as reservations,
       (select count(*) from inventory_events)::bigint as events`;

/**
 * Every product with the sums its counters must equal: reserved = the quantities of its active
 * reservations, purchased = those of its purchased ones. One grouped pass over reservations,
 * joined by hash; a per-product sum would scan reservations once per product, as only active
 * reservations are indexed by sku.
 */
export const declareProducts = `
declare verify_products no scroll cursor for
select p.sku, p.initial_stock, p.total, p.reserved, p.purchased, p.version,
       coalesce(r.reserved_sum, 0)::bigint as reserved_sum,
       coalesce(r.purchased_sum, 0)::bigint as purchased_sum
  from products p
  left join (select sku,
                    sum(quantity) filter (where status = 'active') as reserved_sum,
                    sum(purchased_quantity) filter (where status = 'purchased') as purchased_sum
               from reservations
              group by sku) r on r.sku = p.sku
 order by p.sku`;

export const fetchProducts = `fetch forward ${productsPerFetch} from verify_products`;

/**
 * One page of the events of the products from $1 to $2 (a piece of the products cursor, which
 * is in the same sku order), after ($3, $4) in (sku, seq) order. The upper bound keeps the scan
 * of the unique index (sku, seq) inside the piece.
 */
export const selectEventPage = `
select ${eventColumns}
  from inventory_events e
 where e.sku >= $1::text and e.sku <= $2::text and (e.sku, e.seq) > ($3::text, $4::bigint)
 order by e.sku, e.seq
 limit $5::integer`;

/** The lowest seq a keyset page can start after: every stored seq sorts above it. */
export const seqBeforeAll = '-9223372036854775808';

/**
 * Every reservation with its lifecycle events (reserved, purchased, cancelled, expired) in seq
 * order. Rejections are left out: they do not move a reservation, and a client can make any
 * number of them, so they would make a row unbounded.
 */
export const declareReservations = `
declare verify_reservations no scroll cursor for
select r.id::text as id, r.sku, r.quantity, r.status, r.purchased_quantity,
       coalesce(array_agg(e.type order by e.seq) filter (where e.id is not null), '{}'::text[]) as types,
       coalesce(array_agg(e.seq order by e.seq) filter (where e.id is not null), '{}'::bigint[]) as seqs,
       coalesce(array_agg(e.quantity order by e.seq) filter (where e.id is not null), '{}'::integer[]) as quantities,
       true as same_sku
  from reservations r
  left join inventory_events e
    on e.reservation_id = r.id and e.sku = r.sku
   and e.type in ('reserved', 'purchased', 'released', 'extended', 'cancelled', 'expired')
 group by r.id, r.sku
 order by r.id, r.sku`;

export const fetchReservations = `fetch forward ${reservationsPerFetch} from verify_reservations`;

/**
 * Rows of the three high-volume tables whose product does not exist, per sku (at most $1 skus
 * each). They have no foreign key to products (see migrations/0001_schema.sql): this is where
 * that is checked.
 */
export const selectRowsWithoutProduct = `
select 'inventory_events' as "table", x.sku, count(*)::bigint as rows
  from inventory_events x
 where not exists (select 1 from products p where p.sku = x.sku)
 group by x.sku
union all
select 'reservations', x.sku, count(*)::bigint
  from reservations x
 where not exists (select 1 from products p where p.sku = x.sku)
 group by x.sku
union all
select 'idempotency_records', x.sku, count(*)::bigint
  from idempotency_records x
 where x.sku not like '/%'  -- a cart's key lives in its route's or reservation's scope
   and not exists (select 1 from products p where p.sku = x.sku)
 group by x.sku
 order by 1, 2
 limit $1::integer`;

/** Events naming a reservation that does not exist (at most $1 of them). */
export const selectOrphanEvents = `
select e.sku, e.seq, e.type, e.reservation_id::text as reservation_id
  from inventory_events e
 where e.reservation_id is not null
   and not exists (select 1 from reservations r where r.id = e.reservation_id)
 order by e.sku, e.seq
 limit $1::integer`;

/**
 * G2: a second effect under one (sku, Idempotency-Key) while the first one's record must still
 * exist ($1 ms: the retention of idempotency records). After that a key may legitimately run
 * again. `expired` is not an effect of the request: a purchase after expiresAt writes `expired`
 * and `rejected` under the same key. At most $2 rows.
 */
export const selectRepeatedEffects = `
select k.sku, k.idempotency_key, k.seq, k.previous_seq
  from (select e.sku, e.idempotency_key, e.seq, e.at,
               lag(e.seq) over w as previous_seq,
               lag(e.at) over w as previous_at
          from inventory_events e
         where e.idempotency_key is not null
           and e.type in ('reserved', 'stock_adjusted', 'purchased', 'cancelled', 'rejected')
        window w as (partition by e.sku, e.idempotency_key order by e.seq)) k
 where k.previous_at is not null
   and k.at - k.previous_at < $1::bigint * interval '1 millisecond'
 order by k.sku, k.seq
 limit $2::integer`;

/**
 * G4: reservations whose rows are not one set of lines in one status: lines that disagree on the
 * status, rows that disagree on `lines`, a row count other than `lines`, or line numbers other
 * than 0..lines-1 (at most $1 reservations, each with all of its rows in line order). The CHECK
 * constraints of migrations/0004_reservation_lines.sql hold each row in range; only a grouped read
 * sees the rows of one reservation together. Reservations of one line are grouped as well: a cart
 * whose other rows were lost looks like one.
 */
export const selectIrregularReservationLines = `
select r.id::text as id,
       array_agg(r.sku order by r.line, r.sku) as skus,
       array_agg(r.status order by r.line, r.sku) as statuses,
       array_agg(r.line order by r.line, r.sku) as line_numbers,
       array_agg(r.lines order by r.line, r.sku) as lines
  from reservations r
 group by r.id
having count(distinct r.status) > 1
    or count(distinct r.lines) > 1
    or count(*) <> max(r.lines)
    or count(distinct r.line) <> count(*)
    or min(r.line) <> 0
    or max(r.line) <> count(*) - 1
 order by r.id
 limit $1::integer`;

/**
 * G1: lines that bought more than they reserved, or a negative amount (at most $1). The CHECK
 * reservations_purchased_within_line refuses such a row; verify still says it, so a database
 * whose constraint was dropped or never applied is not trusted on the constraint's word.
 */
export const selectOverboughtLines = `
select r.id::text as id, r.sku, r.quantity, r.purchased_quantity
  from reservations r
 where r.purchased_quantity < 0 or r.purchased_quantity > r.quantity
 order by r.sku, r.id
 limit $1::integer`;

/**
 * Transactions that wrote events of a reservation of several lines on some of its products but not
 * all: every operation on a cart (reserve, purchase, cancel, extend, expire, a refusal) writes an
 * event on each of its products in one transaction, so each transaction covers all of them.
 */
export const selectSplitCartOperations = `
select e.reservation_id::text as reservation_id, string_agg(distinct e.type, ',') as type,
       (extract(epoch from min(e.at)) * 1000)::bigint::text as at_ms,
       array_agg(e.sku order by e.sku, e.seq) as skus,
       array_agg(e.seq order by e.sku, e.seq) as seqs,
       r.lines::integer as lines
  from inventory_events e
  join (select id, max(lines) as lines from reservations group by id) r on r.id = e.reservation_id
 where r.lines > 1
 group by e.reservation_id, e.tx_id, r.lines
having count(distinct e.sku) <> r.lines
 order by 1, 3
 limit $1::integer`;
