import { assert } from './errors.ts';
import { isoOf } from './time.ts';
import type { Counters, InventoryView, Reservation, ReservationLineView, ReservationView } from './types.ts';

/** One line as a client sees it: what was bought shows once purchased. */
function lineView(r: Reservation): ReservationLineView {
  return r.purchasedQuantity === null
    ? { sku: r.sku, quantity: r.quantity }
    : { sku: r.sku, quantity: r.quantity, purchasedQuantity: r.purchasedQuantity };
}

/**
 * A reservation from its lines (all of them, any order): lines in the order the client sent them;
 * a reservation of one line also shows its `sku` and `quantity` at the top.
 */
export function reservationView(...lines: readonly Reservation[]): ReservationView {
  const ordered = [...lines].sort((a, b) => a.line - b.line);
  const first = ordered[0];
  assert(first !== undefined, 'a reservation has a line');
  const view: ReservationView = {
    id: first.id,
    ...(ordered.length === 1 ? { sku: first.sku, quantity: first.quantity } : {}),
    lines: ordered.map(lineView),
    status: first.status,
    createdAt: isoOf(first.createdAtMs),
    expiresAt: isoOf(first.expiresAtMs),
  };
  if (first.finishedAtMs !== null) {
    if (first.status === 'purchased') view.purchasedAt = isoOf(first.finishedAtMs);
    else if (first.status === 'cancelled') view.cancelledAt = isoOf(first.finishedAtMs);
    else if (first.status === 'expired') view.expiredAt = isoOf(first.finishedAtMs);
  }
  return view;
}

export function inventoryView(sku: string, c: Counters, activeReservations: number): InventoryView {
  return {
    sku,
    total: c.total,
    reserved: c.reserved,
    purchased: c.purchased,
    available: c.total - c.reserved - c.purchased,
    activeReservations,
    version: c.version,
  };
}
