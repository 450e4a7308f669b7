import { isoOf } from './time.ts';
import type { Counters, InventoryView, Reservation, ReservationView } from './types.ts';

export function reservationView(r: Reservation): ReservationView {
  const view: ReservationView = {
    id: r.id,
    sku: r.sku,
    quantity: r.quantity,
    status: r.status,
    createdAt: isoOf(r.createdAtMs),
    expiresAt: isoOf(r.expiresAtMs),
  };
  if (r.finishedAtMs !== null) {
    if (r.status === 'purchased') view.purchasedAt = isoOf(r.finishedAtMs);
    else if (r.status === 'cancelled') view.cancelledAt = isoOf(r.finishedAtMs);
    else if (r.status === 'expired') view.expiredAt = isoOf(r.finishedAtMs);
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
