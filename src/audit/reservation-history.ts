import { nextStatus, type LifecycleEvent } from '../engine/lifecycle.ts';
import type { ReservationStatus } from '../engine/types.ts';
import type { ReservationHistory } from '../persistence/audit-snapshot.ts';
import type { Violation } from './verify-report.ts';

const lifecycleEventOf: Record<string, LifecycleEvent | undefined> = {
  purchased: { type: 'PURCHASE' },
  cancelled: { type: 'CANCEL' },
  expired: { type: 'EXPIRE' },
  // A purchase of none of a line is only its release.
  released: { type: 'PURCHASE' },
  extended: { type: 'EXTEND' },
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
 * G7: a reservation line's history is a legal path of the lifecycle machine - `reserved` first,
 * then only steps the machine allows - and it ends in the status the row holds. `reserved`,
 * `extended`, `cancelled` and `expired` are for the line's quantity; a purchase is `purchased` for
 * what was bought and `released` for the rest (either may be absent when it is zero), together the
 * line's quantity and the bought part equal to the row's. The machine is asked through nextStatus(),
 * the same pure transition the engine decides with, so verify and engine cannot disagree.
 */
export function checkReservationHistory(h: ReservationHistory): Violation[] {
  const found: Violation[] = [];
  const violation = (message: string) => found.push({ guarantee: 'G7', sku: h.sku, reservationId: h.id, message });
  if (!h.sameSku) violation('some of its events belong to another product');
  if (h.types[0] !== 'reserved') {
    violation(
      h.types.length === 0
        ? 'has no reserved event'
        : `its first event is ${h.types[0]} (seq ${h.seqs[0]}), not reserved`,
    );
    return found;
  }
  let status: ReservationStatus = 'active';
  let bought = 0;
  let released = 0;
  for (let i = 0; i < h.types.length; i++) {
    const type = h.types[i]!;
    const seq = h.seqs[i];
    const quantity = h.quantities[i] ?? 0;
    if (type === 'purchased' || type === 'released') {
      if (type === 'purchased') bought += quantity;
      else released += quantity;
      // The first of the two is the step out of active; a released after purchased is the same step.
      if (status === 'purchased' && type === 'released' && released === quantity) continue;
    } else if (quantity !== h.quantity) {
      violation(`seq ${seq} (${type}) is for quantity ${quantity}, but the line holds ${h.quantity}`);
    }
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
  if (status === 'purchased' && (bought + released !== h.quantity || bought !== h.purchasedQuantity)) {
    violation(
      `its purchase bought ${bought} and released ${released} of ${h.quantity}, but its row says ${h.purchasedQuantity} bought`,
    );
  }
  return found;
}
