// Figures for operators, read across every instance that shares the database.

/**
 * Active reservations of all products. The partial index reservations_active_by_sku holds only
 * active rows, so this counts the open set, not the history.
 */
export const countActiveReservations = `
select count(*)::bigint as active
  from reservations
 where status = 'active'`;
