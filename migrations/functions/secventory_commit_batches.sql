-- Commits actor batches - of one product, or of several at once - in one statement, so one
-- transaction, one round trip and one fsync however many commands they hold. A hot product's
-- thousand queued reservations are one batch; a sale spread over thousands of SKUs sends the
-- batches that wait at the same moment together (group commit). Called as a single statement
-- outside BEGIN/COMMIT, it is its own transaction: all of it is written or none (G4).
--
-- Each product is guarded by the version and the hash of the newest event (the chain head) its
-- actor decided against: the product row is updated only WHERE version = <that version> and that
-- event's hash is <that hash>. A product whose guard moved (another instance or an operator wrote),
-- or one of whose idempotency keys was used before, writes nothing while the others commit.
-- Checking keys here rather than in a query before the batch saves a round trip on every batch
-- for the rare retry. The result is a jsonb array with one element per product, in order: null
-- (committed), {"conflict": true} (reload and decide again) or
-- {"known": [{key, fingerprint, outcome}, ...]} (decide again, replaying those).
-- A reservation not in the status its actor saw raises SQLSTATE 'SV409' for the whole statement (it
-- can only happen when a row was changed behind the version's back); every actor then reloads.
--
-- Why the chain head and not the version alone: an actor may have a second batch of its product in
-- flight while the first commits (pipelining: the next batch is decided and sent while the database
-- works on the previous one; it waits for the first's row lock and then commits right after it).
-- That second batch was decided on top of the first. Should the first not commit because another
-- instance wrote, the other instance may by chance have written exactly as many events as the first
-- batch held, so the version alone would match and the second batch would overwrite counters it
-- never saw. The hash chains the content of every event, so the head the actor decided against is
-- in the database only if exactly the history it decided against is. One index probe per product.
--
-- Row arrays carry their product's SKU (r_sku, u_sku, e_sku, i_sku). Timestamps are epoch ms.
-- With all_or_nothing (a cart: one operation over several products) a product that would not commit
-- refuses the whole group (SQLSTATE 'SV409', as a changed status does).
-- The parameter list is the one src/persistence/sql/products.ts sends; changing it needs a numbered
-- migration that drops this signature first (see migrations/README.md).
CREATE OR REPLACE FUNCTION secventory_commit_batches(
  p_sku              text[],
  p_version_before   bigint[],
  p_hash_before      text[],
  p_version_after    bigint[],
  p_total            bigint[],
  p_reserved         bigint[],
  p_purchased        bigint[],
  p_at_ms            bigint[],
  r_sku              text[],
  r_id               uuid[],
  r_quantity         integer[],
  r_created_at_ms    bigint[],
  r_expires_at_ms    bigint[],
  r_line             smallint[],
  r_lines            smallint[],
  u_sku              text[],
  u_id               uuid[],
  u_from             text[],
  u_to               text[],
  u_at_ms            bigint[],
  u_purchased_quantity integer[],
  u_expires_at_ms    bigint[],
  e_sku              text[],
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
  e_expires_at_ms    bigint[],
  i_sku              text[],
  i_key              text[],
  i_fingerprint      text[],
  i_outcome          text[],
  i_at_ms            bigint[],
  all_or_nothing     boolean
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  known     jsonb;
  -- The products that commit, as the keys of a jsonb object: `committed ? sku` is a binary search.
  -- An array's `= ANY (committed)` is a linear scan per row once PostgreSQL uses a generic plan
  -- (after five calls), which made a commit of a thousand products' rows quadratic.
  committed jsonb;
  committed_count bigint;
  changed   bigint;
  expected  bigint;
  results   jsonb;
BEGIN
  -- Lock the product rows in SKU order, the same in every instance: groups of two instances
  -- may wait for each other but never deadlock.
  PERFORM 1 FROM products WHERE sku = ANY (p_sku) ORDER BY sku FOR UPDATE;

  -- Keys used before, by product. The rows are locked, so no writer adds one before COMMIT.
  SELECT coalesce(jsonb_object_agg(x.sku, x.records), '{}'::jsonb) INTO known
    FROM (SELECT k.sku, jsonb_agg(jsonb_build_object('key', k.key, 'fingerprint', k.fingerprint, 'outcome', k.outcome)) AS records
            FROM idempotency_records k
            JOIN unnest(i_sku, i_key) AS i (sku, key) ON k.sku = i.sku AND k.key = i.key
           GROUP BY k.sku) AS x;

  WITH updated AS (
    UPDATE products AS p
       SET total = u.total, reserved = u.reserved, purchased = u.purchased,
           version = u.version_after, updated_at = to_timestamp(u.at_ms::double precision / 1000)
      FROM unnest(p_sku, p_version_before, p_hash_before, p_version_after, p_total, p_reserved, p_purchased, p_at_ms)
           AS u (sku, version_before, hash_before, version_after, total, reserved, purchased, at_ms)
     WHERE p.sku = u.sku AND p.version = u.version_before AND NOT (known ? u.sku)
       AND EXISTS (SELECT 1 FROM inventory_events e
                    WHERE e.sku = u.sku AND e.seq = u.version_before AND e.hash = u.hash_before)
    RETURNING p.sku)
  SELECT count(*), coalesce(jsonb_object_agg(sku, true), '{}'::jsonb) INTO committed_count, committed FROM updated;

  -- A cart's products commit together or not at all: one refused product refuses them all, and
  -- the exception undoes whatever this statement wrote. Its actors reload and decide again.
  IF all_or_nothing AND committed_count < cardinality(p_sku) THEN
    RAISE EXCEPTION 'a product of an all-or-nothing group changed behind its version' USING ERRCODE = 'SV409';
  END IF;

  INSERT INTO reservations (id, sku, quantity, status, created_at, expires_at, line, lines)
  SELECT r.id, r.sku, r.quantity, 'active',
         to_timestamp(r.created_at_ms::double precision / 1000), to_timestamp(r.expires_at_ms::double precision / 1000),
         r.line, r.lines
    FROM unnest(r_sku, r_id, r_quantity, r_created_at_ms, r_expires_at_ms, r_line, r_lines)
         AS r (sku, id, quantity, created_at_ms, expires_at_ms, line, lines)
   WHERE committed ? r.sku;

  -- A change to 'active' is an extension: it keeps the line open and moves its expiry.
  UPDATE reservations AS t
     SET status = u.to_status,
         finished_at = CASE WHEN u.to_status = 'active' THEN NULL ELSE to_timestamp(u.at_ms::double precision / 1000) END,
         purchased_quantity = u.purchased_quantity,
         expires_at = coalesce(to_timestamp(u.expires_at_ms::double precision / 1000), t.expires_at)
    FROM unnest(u_sku, u_id, u_from, u_to, u_at_ms, u_purchased_quantity, u_expires_at_ms)
         AS u (sku, id, from_status, to_status, at_ms, purchased_quantity, expires_at_ms)
   WHERE t.id = u.id AND t.sku = u.sku AND t.status = u.from_status AND committed ? u.sku;
  GET DIAGNOSTICS changed = ROW_COUNT;
  SELECT count(*) INTO expected FROM unnest(u_sku) AS s (sku) WHERE committed ? s.sku;
  IF changed <> expected THEN
    RAISE EXCEPTION 'a reservation status changed behind its product''s version' USING ERRCODE = 'SV409';
  END IF;

  INSERT INTO inventory_events (sku, seq, type, reservation_id, quantity, delta, reason, code,
                                request_id, idempotency_key, source, late_ms,
                                total, reserved, purchased, at, hash, expires_at)
  SELECT e.sku, e.seq, e.type, e.reservation_id, e.quantity, e.delta, e.reason, e.code,
         e.request_id, e.idempotency_key, e.source, e.late_ms,
         e.total, e.reserved, e.purchased, to_timestamp(e.at_ms::double precision / 1000), e.hash,
         to_timestamp(e.expires_at_ms::double precision / 1000)
    FROM unnest(e_sku, e_seq, e_type, e_reservation_id, e_quantity, e_delta, e_reason, e_code,
                e_request_id, e_idempotency_key, e_source, e_late_ms,
                e_total, e_reserved, e_purchased, e_at_ms, e_hash, e_expires_at_ms)
         AS e (sku, seq, type, reservation_id, quantity, delta, reason, code,
               request_id, idempotency_key, source, late_ms,
               total, reserved, purchased, at_ms, hash, expires_at_ms)
   WHERE committed ? e.sku
   ORDER BY e.sku, e.seq;

  -- A record is scoped to a product of the group, or (a cart's key) to something else, such as the
  -- route or the reservation: those are written only by an all-or-nothing group, which got here
  -- only if every product committed (so all of its records are written). A scope's key used before
  -- fails the statement (unique key): the caller looks the record up and replays it.
  INSERT INTO idempotency_records (sku, key, fingerprint, outcome, created_at)
  SELECT i.sku, i.key, i.fingerprint, i.outcome::jsonb, to_timestamp(i.at_ms::double precision / 1000)
    FROM unnest(i_sku, i_key, i_fingerprint, i_outcome, i_at_ms) AS i (sku, key, fingerprint, outcome, at_ms)
   WHERE all_or_nothing OR committed ? i.sku;

  SELECT jsonb_agg(CASE WHEN known ? x.sku THEN jsonb_build_object('known', known -> x.sku)
                        WHEN committed ? x.sku THEN 'null'::jsonb
                        ELSE '{"conflict": true}'::jsonb END ORDER BY x.ord)
    INTO results
    FROM unnest(p_sku) WITH ORDINALITY AS x (sku, ord);
  RETURN results;
END;
$$;
