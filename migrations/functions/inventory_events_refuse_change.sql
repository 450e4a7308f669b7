-- G7: the audit log is append-only. The triggers of migration 0001 call this before every UPDATE, DELETE
-- (each row) and TRUNCATE of inventory_events; refusing with insufficient_privilege makes the statement fail
-- as a forbidden write would, and names the operation that was refused.
CREATE OR REPLACE FUNCTION inventory_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'inventory_events is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
