-- Up Migration

-- Each product's guard in secventory_commit_batches became (version, hash of the newest event)
-- instead of the version alone (the reason is in migrations/functions/secventory_commit_batches.sql).
-- The new parameter p_hash_before changed the function's signature, so the old signature is dropped
-- here: CREATE OR REPLACE would add the new one next to it instead of replacing it. IF EXISTS, as a
-- database migrated in this layout never had the old one.
DROP FUNCTION IF EXISTS secventory_commit_batches(text[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[],
  text[], uuid[], integer[], bigint[], bigint[], text[], uuid[], text[], text[], bigint[],
  text[], bigint[], text[], uuid[], integer[], bigint[], text[], text[], text[], text[], text[], bigint[],
  bigint[], bigint[], bigint[], bigint[], text[], text[], text[], text[], text[]);
