const reservationColumns = `
  id, sku, quantity, line, lines, purchased_quantity, status,
  (extract(epoch from created_at) * 1000)::bigint as created_at_ms,
  (extract(epoch from expires_at) * 1000)::bigint as expires_at_ms,
  (extract(epoch from finished_at) * 1000)::bigint as finished_at_ms`;

export const selectReservationsOfProduct = `
select ${reservationColumns}
  from reservations
 where sku = $1::text and id = any($2::uuid[])`;

/** Every line of a reservation, in the order the client sent them. */
export const selectReservation = `
select ${reservationColumns}
  from reservations
 where id = $1::uuid
 order by line`;

/** The products of a reservation's lines, in line order. */
export const selectReservationSkus = `
select sku from reservations where id = $1::uuid order by line`;

/** The sweeper's query; served by the partial index reservations_active_by_expiry. */
export const selectDueReservations = `
select id, sku, lines
  from reservations
 where status = 'active' and expires_at <= $1::timestamptz
 order by expires_at
 limit $2::integer`;
