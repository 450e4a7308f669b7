import type pg from 'pg';
import { expect } from 'vitest';

/**
 * G1, G3 and the batch protocol's bookkeeping, checked in SQL: for every product the counters
 * equal the sums over its reservation rows, and its version equals its number of events.
 */
export async function expectConsistent(sql: pg.Pool): Promise<void> {
  const { rows } = await sql.query(`
    select p.sku, p.total, p.reserved, p.purchased, p.version,
           coalesce(sum(r.quantity) filter (where r.status = 'active'), 0)::bigint as active_sum,
           coalesce(sum(r.quantity) filter (where r.status = 'purchased'), 0)::bigint as purchased_sum,
           (select count(*) from inventory_events e where e.sku = p.sku)::bigint as events
      from products p left join reservations r on r.sku = p.sku
     group by p.sku`);
  for (const row of rows) {
    const facts = {
      sku: row.sku,
      g1: Number(row.reserved) + Number(row.purchased) <= Number(row.total),
      g3: Number(row.total) >= 0 && Number(row.reserved) >= 0 && Number(row.purchased) >= 0,
      reservedEqualsActiveSum: Number(row.reserved) === Number(row.active_sum),
      purchasedEqualsPurchasedSum: Number(row.purchased) === Number(row.purchased_sum),
      versionEqualsEvents: Number(row.version) === Number(row.events),
    };
    expect(facts).toEqual({ sku: row.sku, g1: true, g3: true, reservedEqualsActiveSum: true, purchasedEqualsPurchasedSum: true, versionEqualsEvents: true });
  }
}
