import { nextStatus, type LifecycleEvent } from '../engine/lifecycle.ts';
import type { ReservationStatus } from '../engine/types.ts';
import type { ReservationHistory } from '../persistence/audit-snapshot.ts';
import type { Violation } from './verify-report.ts';

const lifecycleEventOf: Record<string, LifecycleEvent | undefined> = {
  purchased: { type: 'PURCHASE' },
  cancelled: { type: 'CANCEL' },
  expired: { type: 'EXPIRE' },
};

// The machine answers in about 16 us, which over millions of reservations is most of verify's
// time. Its answer depends on nothing but (status, event), so each of the few pairs is asked once.
const stepCache = new Map<string, ReservationStatus | null>();
function step(status: ReservationStatus, event: LifecycleEvent): ReservationStatus | null {
  const pair = `${status} ${event.type}`;
  let next = stepCache.get(pair);
  if (next === undefined) {
    next = nextStatus(status, event);
    stepCache.set(pair, next);
  }
  return next;
}

/**
 * G7: a reservation's history is a legal path of the lifecycle machine - `reserved` first, then
 * only steps the machine allows, each for the reservation's quantity - and it ends in the status
 * the row holds. The machine is asked through nextStatus(), the same pure transition the engine
 * decides with, so verify and engine cannot disagree about what is legal.
 */
export function checkReservationHistory(h: ReservationHistory): Violation[] {
  const found: Violation[] = [];
  const violation = (message: string) => found.push({ guarantee: 'G7', sku: h.sku, reservationId: h.id, message });

  if (!h.sameSku) violation('some of its events belong to another product');
  if (h.types[0] !== 'reserved') {
    violation(h.types.length === 0 ? 'has no reserved event' : `its first event is ${h.types[0]} (seq ${h.seqs[0]}), not reserved`);
    return found;
  }
  let status: ReservationStatus = 'active';
  for (let i = 0; i < h.types.length; i++) {
    const type = h.types[i]!;
    const seq = h.seqs[i];
    if (h.quantities[i] !== h.quantity) violation(`seq ${seq} (${type}) is for quantity ${h.quantities[i]}, but the reservation holds ${h.quantity}`);
    if (i === 0) continue;
    const event = lifecycleEventOf[type];
    const next: ReservationStatus | null = event === undefined ? null : step(status, event);
    if (next === null) {
      violation(`seq ${seq} (${type}) is not a legal step from ${status}`);
      return found;
    }
    status = next;
  }
  if (status !== h.status) violation(`its events end in ${status}, but its row says ${h.status}`);
  return found;
}
