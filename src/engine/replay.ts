import type { EventDraft } from './types.ts';

/** A product's stock counters, without the version. */
export interface Stock {
  readonly total: number;
  readonly reserved: number;
  readonly purchased: number;
}

/**
 * What one audit event does to a product's counters (G7: replaying a product's events reproduces
 * its row). `product_created` starts from nothing; a rejection changes nothing. Null when the
 * event lacks the field its type needs (a quantity, a delta) - a broken event, never a guess.
 * The engine's decisions, `secventory verify` and the tests all replay through this one function.
 */
export function stockAfter(before: Stock, e: Pick<EventDraft, 'type' | 'quantity' | 'delta' | 'total'>): Stock | null {
  switch (e.type) {
    case 'product_created':
      return { total: e.total, reserved: 0, purchased: 0 };
    case 'stock_adjusted':
      return e.delta === null ? null : { ...before, total: before.total + e.delta };
    case 'reserved':
      return e.quantity === null ? null : { ...before, reserved: before.reserved + e.quantity };
    case 'purchased':
      return e.quantity === null
        ? null
        : { ...before, reserved: before.reserved - e.quantity, purchased: before.purchased + e.quantity };
    case 'cancelled':
    case 'expired':
    case 'released':
      return e.quantity === null ? null : { ...before, reserved: before.reserved - e.quantity };
    case 'rejected':
    case 'extended':
      return before;
    default: {
      const unreachable: never = e.type;
      return unreachable;
    }
  }
}
