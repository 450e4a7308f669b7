-- Up Migration

-- Products hold the counters every guarantee is about. G1 and G3 are CHECK constraints: the
-- engine decides so that they always hold, and the database refuses any write that breaks them
-- (the last line of defence, never the first).
CREATE TABLE products (
  sku           text        PRIMARY KEY,
  name          text        NOT NULL,
  initial_stock bigint      NOT NULL,
  total         bigint      NOT NULL,
  reserved      bigint      NOT NULL DEFAULT 0,
  purchased     bigint      NOT NULL DEFAULT 0,
  -- version = number of events of this product = seq of its newest event. Every batch updates
  -- the row only WHERE version = <the version the actor holds>.
  version       bigint      NOT NULL,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  CONSTRAINT products_sku_format CHECK (sku ~ '^[A-Za-z0-9._:-]{1,64}$'),
  CONSTRAINT products_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
  CONSTRAINT products_total_max CHECK (total <= 2147483647),
  CONSTRAINT products_g3_total_nonnegative CHECK (total >= 0),
  CONSTRAINT products_g3_reserved_nonnegative CHECK (reserved >= 0),
  CONSTRAINT products_g3_purchased_nonnegative CHECK (purchased >= 0),
  CONSTRAINT products_g1_no_overselling CHECK (reserved + purchased <= total),
  CONSTRAINT products_version_positive CHECK (version >= 1)
);

-- No foreign keys to products on the three high-volume tables below: their rows are written only
-- by secventory_commit_batches, after it updated (and so locked) the product row they belong to, and
-- a foreign key would add a lookup and a lock per row - three per reservation. `secventory verify`
-- checks that every row belongs to a product.
CREATE TABLE reservations (
  id          uuid        PRIMARY KEY,
  sku         text        NOT NULL,
  quantity    integer     NOT NULL,
  status      text        NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  -- When the reservation left 'active' (purchased, cancelled or expired at).
  finished_at timestamptz,
  CONSTRAINT reservations_quantity_range CHECK (quantity BETWEEN 1 AND 1000000),
  CONSTRAINT reservations_status_known CHECK (status IN ('active', 'purchased', 'cancelled', 'expired')),
  CONSTRAINT reservations_finished_iff_final CHECK ((status = 'active') = (finished_at IS NULL)),
  CONSTRAINT reservations_expiry_after_creation CHECK (expires_at > created_at)
);

-- The sweeper's query: active reservations whose expires_at has passed, oldest first. Only
-- active rows are indexed, so the index stays as small as the set of open reservations.
CREATE INDEX reservations_active_by_expiry ON reservations (expires_at) WHERE status = 'active';
-- An actor loads its product's active reservations when it activates.
CREATE INDEX reservations_active_by_sku ON reservations (sku) WHERE status = 'active';

-- The audit log (G7). Append-only: a trigger below refuses UPDATE, DELETE and TRUNCATE.
CREATE TABLE inventory_events (
  -- Global position. Readers of the whole log order by (tx_id, id) and only read transactions
  -- older than every running one, so a page never skips an event that commits later.
  id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
  sku             text        NOT NULL,
  -- Per-product sequence: gap-free, equal to the product's version right after the event.
  seq             bigint      NOT NULL,
  type            text        NOT NULL,
  reservation_id  uuid,
  quantity        integer,
  delta           bigint,
  reason          text,
  code            text,
  request_id      text,
  idempotency_key text,
  -- 'api' for a client's request, 'sweeper' for an expiry found by the sweeper.
  source          text        NOT NULL,
  -- For 'expired': how long after expires_at the expiry was processed.
  late_ms         bigint,
  total           bigint      NOT NULL,
  reserved        bigint      NOT NULL,
  purchased       bigint      NOT NULL,
  at              timestamptz NOT NULL,
  -- sha256 over the previous event's hash and this event's canonical content (hex).
  hash            text        NOT NULL,
  CONSTRAINT inventory_events_sku_seq UNIQUE (sku, seq),
  CONSTRAINT inventory_events_type_known CHECK (type IN
    ('product_created', 'stock_adjusted', 'reserved', 'purchased', 'cancelled', 'expired', 'rejected')),
  CONSTRAINT inventory_events_source_known CHECK (source IN ('api', 'sweeper')),
  CONSTRAINT inventory_events_rejected_has_code CHECK ((type = 'rejected') = (code IS NOT NULL))
);

CREATE INDEX inventory_events_by_reservation ON inventory_events (reservation_id, id)
  WHERE reservation_id IS NOT NULL;
CREATE INDEX inventory_events_in_log_order ON inventory_events (tx_id, id);

-- Declared here because the triggers below name it. Its body is functions/inventory_events_refuse_change.sql,
-- which replaces this placeholder in the same transaction; the placeholder refuses too, so the table is never
-- open to changes, not even inside that transaction.
CREATE FUNCTION inventory_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'placeholder of functions/inventory_events_refuse_change.sql'; END $$;

CREATE TRIGGER inventory_events_append_only_rows
  BEFORE UPDATE OR DELETE ON inventory_events
  FOR EACH ROW EXECUTE FUNCTION inventory_events_refuse_change();

CREATE TRIGGER inventory_events_append_only_truncate
  BEFORE TRUNCATE ON inventory_events
  FOR EACH STATEMENT EXECUTE FUNCTION inventory_events_refuse_change();

-- Idempotency records (G2). Written in the same transaction as the effect they remember, so
-- "executed" and "remembered" can never disagree. Keys are scoped to a product.
CREATE TABLE idempotency_records (
  sku         text        NOT NULL,
  key         text        NOT NULL,
  -- What the request asked for (operation and payload); a different fingerprint under the
  -- same key is refused with idempotency_key_reused.
  fingerprint text        NOT NULL,
  -- The engine's outcome, from which the API renders the same status and body on a replay.
  outcome     jsonb       NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (sku, key)
);

-- Records are kept at least 24 hours; the sweeper deletes older ones in bounded chunks.
CREATE INDEX idempotency_records_by_age ON idempotency_records (created_at);
