import type pg from 'pg';

// G1, G3 and counters = sums over reservation rows, for every product at once, in plain SQL:
// what the bench and the proof check after a load, independent of the app's word.

export interface StoreWideFacts {
  readonly products: number;
  readonly oversoldProducts: number;
  readonly negativeProducts: number;
  /** Products whose counters differ from the sums over their reservation rows (G4). */
  readonly countersNotEqualSums: number;
}

export async function storeWideFacts(sql: pg.Pool | pg.Client): Promise<StoreWideFacts> {
  const { rows: [c] } = await sql.query(`
    with sums as (
      select p.sku, p.total, p.reserved, p.purchased,
             coalesce(sum(r.quantity) filter (where r.status = 'active'), 0) as active_sum,
             coalesce(sum(r.quantity) filter (where r.status = 'purchased'), 0) as purchased_sum
        from products p left join reservations r on r.sku = p.sku
       group by p.sku)
    select count(*)::int as products,
           count(*) filter (where reserved + purchased > total)::int as oversold,
           count(*) filter (where total < 0 or reserved < 0 or purchased < 0)::int as negative,
           count(*) filter (where reserved <> active_sum or purchased <> purchased_sum)::int as unequal
      from sums`);
  return { products: c.products, oversoldProducts: c.oversold, negativeProducts: c.negative, countersNotEqualSums: c.unequal };
}
