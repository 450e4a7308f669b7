-- Up Migration

-- Commits one actor batch in one statement, so a batch costs one round trip and one fsync
-- however many commands it holds. Called as a single statement outside BEGIN/COMMIT, it is its
-- own transaction: everything below is written together or not at all (G4).
--
-- Returns false, having written nothing, when the product's version is not the one the actor
-- decided against (another instance or an operator wrote): the actor reloads and decides again.
-- Raises SQLSTATE 'SV409' when a reservation is not in the status the actor saw; that can only
-- happen when the product row was changed behind the version's back, and is treated the same way.
CREATE FUNCTION secventory_commit_batch(
  p_sku              text,
  p_version_before   bigint,
  p_version_after    bigint,
  p_total            bigint,
  p_reserved         bigint,
  p_purchased        bigint,
  p_at               timestamptz,
  -- new reservations
  r_id               uuid[],
  r_quantity         integer[],
  r_created_at       timestamptz[],
  r_expires_at       timestamptz[],
  -- reservation status changes, each guarded by the status the actor saw
  u_id               uuid[],
  u_from             text[],
  u_to               text[],
  u_at               timestamptz[],
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
  e_at               timestamptz[],
  e_hash             text[],
  -- idempotency records
  i_key              text[],
  i_fingerprint      text[],
  i_outcome          text[]
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  changed bigint;
BEGIN
  UPDATE products
     SET total = p_total, reserved = p_reserved, purchased = p_purchased,
         version = p_version_after, updated_at = p_at
   WHERE sku = p_sku AND version = p_version_before;
  IF NOT FOUND THEN
    RETURN false;
  END IF;

  INSERT INTO reservations (id, sku, quantity, status, created_at, expires_at)
  SELECT r.id, p_sku, r.quantity, 'active', r.created_at, r.expires_at
    FROM unnest(r_id, r_quantity, r_created_at, r_expires_at)
         AS r (id, quantity, created_at, expires_at);

  UPDATE reservations AS t
     SET status = u.to_status, finished_at = u.at
    FROM unnest(u_id, u_from, u_to, u_at) AS u (id, from_status, to_status, at)
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
         e.total, e.reserved, e.purchased, e.at, e.hash
    FROM unnest(e_seq, e_type, e_reservation_id, e_quantity, e_delta, e_reason, e_code,
                e_request_id, e_idempotency_key, e_source, e_late_ms,
                e_total, e_reserved, e_purchased, e_at, e_hash)
         AS e (seq, type, reservation_id, quantity, delta, reason, code,
               request_id, idempotency_key, source, late_ms,
               total, reserved, purchased, at, hash)
   ORDER BY e.seq;

  INSERT INTO idempotency_records (sku, key, fingerprint, outcome, created_at)
  SELECT p_sku, i.key, i.fingerprint, i.outcome::jsonb, p_at
    FROM unnest(i_key, i_fingerprint, i_outcome) AS i (key, fingerprint, outcome);

  RETURN true;
END;
$$;

-- Down Migration
DROP FUNCTION secventory_commit_batch;
