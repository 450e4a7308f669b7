-- Up Migration

-- This migration created secventory_commit_batches, the one statement that commits actor batches.
-- Its current definition is migrations/functions/secventory_commit_batches.sql, which the runner
-- applies after the numbered migrations on every run; this file stays, empty, because databases
-- record it as applied under its name.
