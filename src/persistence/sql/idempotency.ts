/** The record of a key in its scope: a product's SKU, or a cart's route or reservation. */
export const selectIdempotencyRecord = `
select key, fingerprint, outcome
  from idempotency_records
 where sku = $1::text and key = $2::text`;

/** Deletes at most $2 records older than $1, so one cleanup never holds locks for long. */
export const deleteIdempotencyRecordsBefore = `
delete from idempotency_records
 where ctid in (select ctid from idempotency_records where created_at < $1::timestamptz limit $2::integer)`;
