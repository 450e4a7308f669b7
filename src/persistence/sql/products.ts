// Statements on `products`. Timestamps travel as RFC 3339 text and come back as epoch
// milliseconds, so no Date is parsed on the hot path.

/**
 * A product with the head of its hash chain and its active reservations, in one statement - so
 * one snapshot (the counters and the active set agree even while another instance writes) and
 * one round trip. Reservations come as compact [id, quantity, created_at_ms, expires_at_ms].
 */
export const selectProductWithActiveReservations = `
select p.sku, p.name, p.initial_stock::integer, p.total::integer, p.reserved::integer,
       p.purchased::integer, p.version::bigint,
       (extract(epoch from p.created_at) * 1000)::bigint as created_at_ms,
       (select e.hash from inventory_events e where e.sku = p.sku and e.seq = p.version) as last_hash,
       coalesce((select json_agg(json_build_array(r.id, r.quantity,
                                                  (extract(epoch from r.created_at) * 1000)::bigint,
                                                  (extract(epoch from r.expires_at) * 1000)::bigint,
                                                  r.line, r.lines))
                   from reservations r
                  where r.sku = p.sku and r.status = 'active'), '[]'::json) as active
  from products p
 where p.sku = $1::text`;

export const selectProductVersion = `
select version::bigint from products where sku = $1::text`;

/**
 * Creates a product, its first event (seq 1) and, when the create carries an Idempotency-Key
 * ($7, else null), its idempotency record, in one statement - so the row, its audit event and the
 * remembered answer commit together (G4) - or nothing when the SKU exists; `created` tells which.
 * A record of a product that does not exist yet cannot exist, so the record's insert never meets
 * an earlier one.
 */
export const insertProduct = `
with inserted as (
  insert into products (sku, name, initial_stock, total, reserved, purchased, version, created_at, updated_at)
  values ($1::text, $2::text, $3::bigint, $3::bigint, 0, 0, 1, $4::timestamptz, $4::timestamptz)
  on conflict (sku) do nothing
  returning sku
), event as (
  insert into inventory_events (sku, seq, type, request_id, idempotency_key, source,
                                total, reserved, purchased, at, hash)
  select sku, 1, 'product_created', $5::text, $7::text, 'api', $3::bigint, 0, 0, $4::timestamptz, $6::text
    from inserted
), record as (
  insert into idempotency_records (sku, key, fingerprint, outcome, created_at)
  select sku, $7::text, $8::text, $9::jsonb, $4::timestamptz
    from inserted
   where $7::text is not null
)
select count(*)::integer as created from inserted`;

/**
 * Creates many products and their first events (seq 1) in one statement: $1 SKUs, $2 names,
 * $3 stocks and $7 hashes are arrays of one element per product; the time ($4), request id ($5)
 * and key ($6) are the call's. A SKU that exists is left as it is (no event either); the SKUs
 * created come back. Rows are inserted in the order of the arrays, which the caller sorts by SKU,
 * so that two imports over the same new SKUs wait for each other instead of deadlocking (sorted
 * there rather than here: an ORDER BY sorts by the database's collation, at a cost per call).
 */
export const insertProducts = `
with inserted as (
  insert into products (sku, name, initial_stock, total, reserved, purchased, version, created_at, updated_at)
  select n.sku, n.name, n.stock, n.stock, 0, 0, 1, $4::timestamptz, $4::timestamptz
    from unnest($1::text[], $2::text[], $3::bigint[]) as n (sku, name, stock)
  on conflict (sku) do nothing
  returning sku
), events as (
  insert into inventory_events (sku, seq, type, request_id, idempotency_key, source,
                                total, reserved, purchased, at, hash)
  select n.sku, 1, 'product_created', $5::text, $6::text, 'api', n.stock, 0, 0, $4::timestamptz, n.hash
    from unnest($1::text[], $3::bigint[], $7::text[]) as n (sku, stock, hash)
    join inserted i on i.sku = n.sku
)
select sku from inserted`;

/** Products as committed, with their counts of active reservations (what a Product view shows). */
export const selectProductSummaries = `
select p.sku, p.name, p.initial_stock::integer, p.total::integer, p.reserved::integer,
       p.purchased::integer, p.version::bigint,
       (extract(epoch from p.created_at) * 1000)::bigint as created_at_ms,
       (select count(*) from reservations r where r.sku = p.sku and r.status = 'active')::integer
         as active_reservations
  from products p
 where p.sku = any($1::text[])`;
