-- Up Migration

-- Commits one actor batch in one statement, so a batch costs one round trip and one fsync
-- however many commands it holds. Called as a single statement outside BEGIN/COMMIT, it is its
-- own transaction: everything below is written together or not at all (G4).
--
-- Returns, having written nothing:
--   {"conflict": true} when the product's version is not the one the actor decided against
--     (another instance or an operator wrote): the actor reloads and decides again;
--   {"known": [{key, fingerprint, outcome}, ...]} when some of the batch's idempotency keys were
--     already used: the actor decides again, replaying those. Checking here rather than in a
--     query before the batch saves a round trip on every batch for the rare retry.
-- Returns null when the batch is committed.
-- Raises SQLSTATE 'SV409' when a reservation is not in the status the actor saw; that can only
-- happen when the product row was changed behind the version's back, and is treated as a conflict.
--
-- Timestamps arrive as epoch milliseconds.
CREATE FUNCTION secventory_commit_batch(
  p_sku              text,
  p_version_before   bigint,
  p_version_after    bigint,
  p_total            bigint,
  p_reserved         bigint,
  p_purchased        bigint,
  p_at_ms            bigint,
  -- new reservations
  r_id               uuid[],
  r_quantity         integer[],
  r_created_at_ms    bigint[],
  r_expires_at_ms    bigint[],
  -- reservation status changes, each guarded by the status the actor saw
  u_id               uuid[],
  u_from             text[],
  u_to               text[],
  u_at_ms            bigint[],
  -- audit events, in order
  e_seq              bigint[],
  e_type             text[],
  e_reservation_id   uuid[],
  e_quantity         integer[],
  e_delta            bigint[],
  e_reason           text[],
  e_code             text[],
  e_request_id       text[],
  e_idempotency_key  text[],
  e_source           text[],
  e_late_ms          bigint[],
  e_total            bigint[],
  e_reserved         bigint[],
  e_purchased        bigint[],
  e_at_ms            bigint[],
  e_hash             text[],
  -- idempotency records
  i_key              text[],
  i_fingerprint      text[],
  i_outcome          text[]
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  changed bigint;
  known jsonb;
  p_at timestamptz := to_timestamp(p_at_ms::double precision / 1000);
BEGIN
  -- A key inserted by a writer still in flight is not seen here, but that writer holds or bumped
  -- the product row, so the version check below turns it into a conflict (or the primary key of
  -- idempotency_records refuses the second insert): a key never gets two effects.
  SELECT jsonb_agg(jsonb_build_object('key', k.key, 'fingerprint', k.fingerprint, 'outcome', k.outcome))
    INTO known
    FROM idempotency_records k
   WHERE k.sku = p_sku AND k.key = ANY (i_key);
  IF known IS NOT NULL THEN
    RETURN jsonb_build_object('known', known);
  END IF;

  UPDATE products
     SET total = p_total, reserved = p_reserved, purchased = p_purchased,
         version = p_version_after, updated_at = p_at
   WHERE sku = p_sku AND version = p_version_before;
  IF NOT FOUND THEN
    RETURN '{"conflict": true}'::jsonb;
  END IF;

  INSERT INTO reservations (id, sku, quantity, status, created_at, expires_at)
  SELECT r.id, p_sku, r.quantity, 'active',
         to_timestamp(r.created_at_ms::double precision / 1000), to_timestamp(r.expires_at_ms::double precision / 1000)
    FROM unnest(r_id, r_quantity, r_created_at_ms, r_expires_at_ms)
         AS r (id, quantity, created_at_ms, expires_at_ms);

  UPDATE reservations AS t
     SET status = u.to_status, finished_at = to_timestamp(u.at_ms::double precision / 1000)
    FROM unnest(u_id, u_from, u_to, u_at_ms) AS u (id, from_status, to_status, at_ms)
   WHERE t.id = u.id AND t.sku = p_sku AND t.status = u.from_status;
  GET DIAGNOSTICS changed = ROW_COUNT;
  IF changed <> coalesce(cardinality(u_id), 0) THEN
    RAISE EXCEPTION 'reservation status changed behind product % version %', p_sku, p_version_before
      USING ERRCODE = 'SV409';
  END IF;

  INSERT INTO inventory_events (sku, seq, type, reservation_id, quantity, delta, reason, code,
                                request_id, idempotency_key, source, late_ms,
                                total, reserved, purchased, at, hash)
  SELECT p_sku, e.seq, e.type, e.reservation_id, e.quantity, e.delta, e.reason, e.code,
         e.request_id, e.idempotency_key, e.source, e.late_ms,
         e.total, e.reserved, e.purchased, to_timestamp(e.at_ms::double precision / 1000), e.hash
    FROM unnest(e_seq, e_type, e_reservation_id, e_quantity, e_delta, e_reason, e_code,
                e_request_id, e_idempotency_key, e_source, e_late_ms,
                e_total, e_reserved, e_purchased, e_at_ms, e_hash)
         AS e (seq, type, reservation_id, quantity, delta, reason, code,
               request_id, idempotency_key, source, late_ms,
               total, reserved, purchased, at_ms, hash)
   ORDER BY e.seq;

  INSERT INTO idempotency_records (sku, key, fingerprint, outcome, created_at)
  SELECT p_sku, i.key, i.fingerprint, i.outcome::jsonb, p_at
    FROM unnest(i_key, i_fingerprint, i_outcome) AS i (key, fingerprint, outcome);

  RETURN null;
END;
$$;

-- Down Migration
DROP FUNCTION secventory_commit_batch;
