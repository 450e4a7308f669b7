/** The records of keys in their scopes ($1 scopes, $2 keys, pairwise): a cart's route or reservation. */
export const selectIdempotencyRecords = `
select k.sku as scope, k.key, k.fingerprint, k.outcome
  from idempotency_records k
  join unnest($1::text[], $2::text[]) as a (scope, key) on k.sku = a.scope and k.key = a.key`;

/** Deletes at most $2 records older than $1, so one cleanup never holds locks for long. */
export const deleteIdempotencyRecordsBefore = `
delete from idempotency_records
 where ctid in (select ctid from idempotency_records where created_at < $1::timestamptz limit $2::integer)`;
