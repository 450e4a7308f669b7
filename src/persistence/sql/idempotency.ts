/** The records of keys in their scopes ($1 scopes, $2 keys, pairwise): a cart's route or reservation. */
export const selectIdempotencyRecords = `
select k.sku as scope, k.key, k.fingerprint, k.outcome
  from idempotency_records k
  join unnest($1::text[], $2::text[]) as a (scope, key) on k.sku = a.scope and k.key = a.key`;

/** Deletes at most $2 records older than $1, so one cleanup never holds locks for long. */
export const deleteIdempotencyRecordsBefore = `
delete from idempotency_records
 where ctid in (select ctid from idempotency_records where created_at < $1::timestamptz limit $2::integer)`;

/** Remembers an answer under a key of its scope; a key used before fails the statement (unique key). */
export const insertIdempotencyRecord = `
insert into idempotency_records (sku, key, fingerprint, outcome, created_at)
values ($1::text, $2::text, $3::text, $4::jsonb, $5::timestamptz)`;

/** As insertIdempotencyRecord, but a key used before writes nothing and returns no row. */
export const insertIdempotencyRecordUnlessUsed = `
insert into idempotency_records (sku, key, fingerprint, outcome, created_at)
values ($1::text, $2::text, $3::text, $4::jsonb, $5::timestamptz)
on conflict (sku, key) do nothing
returning key`;

/** Replaces the answer a key remembers; only the record of that fingerprint. */
export const updateIdempotencyOutcome = `
update idempotency_records
   set outcome = $4::jsonb
 where sku = $1::text and key = $2::text and fingerprint = $3::text`;
