// Reads of the audit log (`inventory_events`) for the API. Every page asks for one row more than
// it returns ($n + 1 is computed by the caller), so the reader knows whether another page exists
// without a count. Timestamps come back as epoch milliseconds, the unit the engine hashes.

export const eventColumns = `
  e.id as position, e.sku, e.seq, e.type, e.reservation_id::text as reservation_id, e.quantity,
  e.delta, e.reason, e.code, e.request_id, e.idempotency_key, e.source, e.late_ms,
  e.total, e.reserved, e.purchased, (extract(epoch from e.at) * 1000)::bigint as at_ms, e.hash,
  (extract(epoch from e.expires_at) * 1000)::bigint as expires_at_ms`;

/** One product's events after seq $2, in seq order; served by the unique index (sku, seq). */
export const selectProductEvents = `
select ${eventColumns}
  from inventory_events e
 where e.sku = $1::text and e.seq > $2::bigint
 order by e.seq
 limit $3::integer`;

/**
 * One reservation's events after position $2, in commit order, over all its products (a cart's
 * lines live on several). The events of one operation on a cart commit together, so a reader never
 * sees part of one.
 */
export const selectReservationEvents = `
select ${eventColumns}
  from inventory_events e
 where e.reservation_id = $1::uuid and e.id > $2::bigint
 order by e.id
 limit $3::integer`;

/**
 * The whole log from its beginning, in commit order. Identity values are taken when a row is
 * inserted, not when its transaction commits, so `id` order alone can put an event that commits
 * later before one already read: a reader following `id` would skip it. Ordering by the writing
 * transaction's id and reading only transactions older than every transaction still running
 * (tx_id < xmin of this statement's snapshot) gives a prefix that never changes afterwards: any
 * transaction that commits later has a tx_id at or above that xmin, so its events sort after
 * everything returned so far.
 */
export const selectLogHead = `
select ${eventColumns}
  from inventory_events e
 where e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
 order by e.tx_id, e.id
 limit $1::integer`;

/**
 * The log after the event at position $1 (its `id`), in the same order as selectLogHead. The
 * cursor's place in (tx_id, id) order is looked up from its row, which never changes (the log is
 * append-only). The lookup sits inside a row constructor so that the comparison stays an index
 * condition on (tx_id, id); as a join it becomes a filter that reads the log from its start.
 * An unknown position yields no rows; the caller tells that apart from the end of the log.
 */
export const selectLogAfter = `
select ${eventColumns}
  from inventory_events e
 where (e.tx_id, e.id) > ((select c.tx_id from inventory_events c where c.id = $1::bigint), $1::bigint)
   and e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
 order by e.tx_id, e.id
 limit $2::integer`;

/**
 * The position of the last event of the prefix selectLogHead and selectLogAfter read: the newest
 * event of a transaction older than every transaction still running. Reading selectLogAfter from
 * it yields exactly the events that commit later (the event streams start following there).
 * Served backwards by the same index on (tx_id, id).
 */
export const selectLogTail = `
select e.id as position
  from inventory_events e
 where e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
 order by e.tx_id desc, e.id desc
 limit 1`;

export const selectEventExists = `
select exists (select 1 from inventory_events where id = $1::bigint) as found`;
