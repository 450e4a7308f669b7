-- Up Migration

-- A reservation is one or more lines, one row per line: a cart holds several products at once, all
-- or nothing. Each line belongs to its product (and its product's actor) like a one-product
-- reservation always did; the lines of one reservation share its id and, always, its status.
ALTER TABLE reservations DROP CONSTRAINT reservations_pkey;
ALTER TABLE reservations ADD CONSTRAINT reservations_pkey PRIMARY KEY (id, sku);

-- `line` is the line's place in the request (clients get lines back in the order they sent them),
-- `lines` how many the reservation has; `purchased_quantity` how much of the line was bought
-- (a partial purchase returns the rest to available in the same step).
ALTER TABLE reservations
  ADD COLUMN line smallint NOT NULL DEFAULT 0,
  ADD COLUMN lines smallint NOT NULL DEFAULT 1,
  ADD COLUMN purchased_quantity integer;
UPDATE reservations SET purchased_quantity = quantity WHERE status = 'purchased';
ALTER TABLE reservations
  ADD CONSTRAINT reservations_line_in_range CHECK (lines BETWEEN 1 AND 100 AND line >= 0 AND line < lines),
  ADD CONSTRAINT reservations_purchased_iff_purchased CHECK ((status = 'purchased') = (purchased_quantity IS NOT NULL)),
  ADD CONSTRAINT reservations_purchased_within_line CHECK (purchased_quantity BETWEEN 0 AND quantity);

-- A partial purchase returns what was not bought (`released`); an extension moves expires_at
-- (`extended`, which records the new expiry).
ALTER TABLE inventory_events DROP CONSTRAINT inventory_events_type_known;
ALTER TABLE inventory_events ADD CONSTRAINT inventory_events_type_known CHECK (type IN
  ('product_created', 'stock_adjusted', 'reserved', 'purchased', 'cancelled', 'expired', 'released', 'extended', 'rejected'));
ALTER TABLE inventory_events ADD COLUMN expires_at timestamptz;

-- The commit function gains the lines' columns, the extension's expiry and all-or-nothing groups.
DROP FUNCTION IF EXISTS secventory_commit_batches(text[], bigint[], text[], bigint[], bigint[], bigint[], bigint[], bigint[],
  text[], uuid[], integer[], bigint[], bigint[], text[], uuid[], text[], text[], bigint[],
  text[], bigint[], text[], uuid[], integer[], bigint[], text[], text[], text[], text[], text[], bigint[],
  bigint[], bigint[], bigint[], bigint[], text[], text[], text[], text[], text[]);
