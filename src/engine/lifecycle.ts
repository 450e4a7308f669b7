import { setup, transition } from 'xstate';
import type { ReservationStatus } from './types.ts';

export type LifecycleEvent = { type: 'PURCHASE' } | { type: 'CANCEL' } | { type: 'EXPIRE' } | { type: 'EXTEND' };

/**
 * The reservation lifecycle: active -> purchased | cancelled | expired, all three final; an
 * extension keeps it active.
 * It has no side effects; the engine and `secventory verify` use it only through XState's pure
 * `transition()`, so an illegal transition is a value (null), never a crash.
 */
export const reservationLifecycle = setup({
  types: { events: {} as LifecycleEvent },
}).createMachine({
  id: 'reservation',
  initial: 'active',
  states: {
    active: {
      // Extending keeps a reservation active (a self-transition).
      on: { PURCHASE: 'purchased', CANCEL: 'cancelled', EXPIRE: 'expired', EXTEND: 'active' },
    },
    purchased: { type: 'final' },
    cancelled: { type: 'final' },
    expired: { type: 'final' },
  },
});

const statuses: readonly ReservationStatus[] = ['active', 'purchased', 'cancelled', 'expired'];

// Snapshots carry no context, so one per status serves every reservation.
const snapshotByStatus = new Map(
  statuses.map((status) => [status, reservationLifecycle.resolveState({ value: status, context: {} })]),
);

/** The status after `event`, or null when the lifecycle does not allow it. */
export function nextStatus(status: ReservationStatus, event: LifecycleEvent): ReservationStatus | null {
  const snapshot = snapshotByStatus.get(status);
  if (snapshot === undefined || !snapshot.can(event)) return null;
  const [next] = transition(reservationLifecycle, snapshot, event);
  return next.value;
}

export function isReservationStatus(value: string): value is ReservationStatus {
  return (statuses as readonly string[]).includes(value);
}
