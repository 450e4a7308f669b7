import type { Counters, InventoryView, Reservation, ReservationView } from './types.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export function reservationView(r: Reservation): ReservationView {
  const view: ReservationView = {
    id: r.id,
    sku: r.sku,
    quantity: r.quantity,
    status: r.status,
    createdAt: iso(r.createdAtMs),
    expiresAt: iso(r.expiresAtMs),
  };
  if (r.finishedAtMs !== null) {
    if (r.status === 'purchased') view.purchasedAt = iso(r.finishedAtMs);
    else if (r.status === 'cancelled') view.cancelledAt = iso(r.finishedAtMs);
    else if (r.status === 'expired') view.expiredAt = iso(r.finishedAtMs);
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
