import { nextStatus, type LifecycleEvent } from './lifecycle.ts';
import { reservationLifetimeMaxSeconds, stockMax } from './limits.ts';
import { isoOf } from './time.ts';
import type {
  Command,
  Counters,
  EventDraft,
  EventSource,
  Outcome,
  RejectionCode,
  Reservation,
  ReservationStatus,
  StatusChange,
} from './types.ts';
import { inventoryView, reservationView } from './views.ts';

/** What `decide` may look at: a product's state as of the commands decided before this one. */
export interface DecisionView {
  readonly sku: string;
  readonly counters: Counters;
  readonly activeReservations: number;
  /** Any reservation of this product the batch knows: active in memory, or loaded for it. */
  reservation(id: string): Reservation | undefined;
}

export interface Decision {
  readonly outcome: Outcome;
  /** Empty only for a replay by the lifecycle (e.g. purchasing a purchased reservation). */
  readonly events: readonly EventDraft[];
  readonly counters: Counters;
  readonly inserted: readonly Reservation[];
  readonly changed: readonly StatusChange[];
  /** Reservations as they are after this decision (new or changed). */
  readonly reservations: readonly Reservation[];
}

/**
 * Decides one command against a product's state. Pure: no I/O and no clock; the same input
 * always gives the same decision. Checks run in a fixed order - lifecycle state, then expiry,
 * then stock - and every rejection is itself an audit event.
 */
export function decide(view: DecisionView, command: Command, nowMs: number): Decision {
  switch (command.type) {
    case 'reserve':
      return decideReserve(view, command, nowMs);
    case 'purchase':
      return decidePurchase(view, command, nowMs);
    case 'cancel':
      return decideFinish(view, command, 'CANCEL', nowMs);
    case 'expire':
      return decideExpire(view, command, nowMs);
    case 'adjust':
      return decideAdjust(view, command, nowMs);
    case 'extend':
      return decideExtend(view, command, nowMs);
    case 'refuse': {
      const r = rejection(view.counters, nowMs, metaOf(command), command.code, command.detail, {
        reservationId: command.newReservation ? null : command.reservationId,
        quantity: command.quantity,
      });
      return decisionOf(r);
    }
    default: {
      const unreachable: never = command;
      return unreachable;
    }
  }
}

type Meta = { requestId: string | null; idempotencyKey: string | null; source: EventSource };

function metaOf(command: Command): Meta {
  if (command.type === 'expire') return { requestId: null, idempotencyKey: null, source: 'sweeper' };
  if (command.type === 'refuse') return { requestId: command.requestId, idempotencyKey: null, source: 'api' };
  return { requestId: command.requestId, idempotencyKey: command.idempotencyKey, source: 'api' };
}

function draft(
  counters: Counters,
  nowMs: number,
  meta: Meta,
  fields: Pick<EventDraft, 'type'> & Partial<EventDraft>,
): EventDraft {
  return {
    seq: counters.version,
    reservationId: null,
    quantity: null,
    delta: null,
    reason: null,
    code: null,
    lateMs: null,
    expiresAtMs: null,
    ...meta,
    ...fields,
    total: counters.total,
    reserved: counters.reserved,
    purchased: counters.purchased,
    atMs: nowMs,
  };
}

function bump(c: Counters, change: Partial<Omit<Counters, 'version'>>): Counters {
  return { ...c, ...change, version: c.version + 1 };
}

function rejection(
  counters: Counters,
  nowMs: number,
  meta: Meta,
  code: RejectionCode,
  detail: string,
  fields: Partial<EventDraft> = {},
): { counters: Counters; event: EventDraft; outcome: Outcome } {
  const after = bump(counters, {});
  return {
    counters: after,
    event: draft(after, nowMs, meta, { type: 'rejected', code, ...fields }),
    outcome: { kind: 'rejected', code, detail },
  };
}

/** A decision that only records a rejection: one `rejected` event, nothing else changed. */
function decisionOf(r: ReturnType<typeof rejection>): Decision {
  return { outcome: r.outcome, events: [r.event], counters: r.counters, inserted: [], changed: [], reservations: [] };
}

function decideReserve(view: DecisionView, command: Extract<Command, { type: 'reserve' }>, nowMs: number): Decision {
  const meta = metaOf(command);
  const c = view.counters;
  const available = c.total - c.reserved - c.purchased;
  if (available < command.quantity) {
    const r = rejection(c, nowMs, meta, 'insufficient_stock', `requested ${command.quantity}, available ${available}`, {
      quantity: command.quantity,
    });
    return { outcome: r.outcome, events: [r.event], counters: r.counters, inserted: [], changed: [], reservations: [] };
  }
  const reservation: Reservation = {
    id: command.reservationId,
    sku: view.sku,
    quantity: command.quantity,
    line: command.line ?? 0,
    lines: command.lines ?? 1,
    purchasedQuantity: null,
    status: 'active',
    createdAtMs: nowMs,
    expiresAtMs: nowMs + command.ttlSeconds * 1000,
    finishedAtMs: null,
  };
  const after = bump(c, { reserved: c.reserved + command.quantity });
  const event = draft(after, nowMs, meta, {
    type: 'reserved',
    reservationId: reservation.id,
    quantity: reservation.quantity,
  });
  return {
    outcome: { kind: 'reservation', created: true, reservation: reservationView(reservation) },
    events: [event],
    counters: after,
    inserted: [reservation],
    changed: [],
    reservations: [reservation],
  };
}

const rejectionForStatus: Record<Exclude<ReservationStatus, 'active'>, RejectionCode> = {
  purchased: 'reservation_purchased',
  cancelled: 'reservation_cancelled',
  expired: 'reservation_expired',
};

const targetOf: Record<Exclude<LifecycleEvent['type'], 'EXTEND'>, ReservationStatus> = {
  PURCHASE: 'purchased',
  CANCEL: 'cancelled',
  EXPIRE: 'expired',
};

function finish(
  r: Reservation,
  to: ReservationStatus,
  nowMs: number,
  purchasedQuantity: number | null = null,
): Reservation {
  return { ...r, status: to, finishedAtMs: nowMs, purchasedQuantity };
}

function changeOf(
  r: Reservation,
  to: ReservationStatus,
  nowMs: number,
  purchasedQuantity: number | null = null,
): StatusChange {
  return { id: r.id, from: r.status, to, atMs: nowMs, purchasedQuantity, expiresAtMs: null };
}

/** Counters after a reservation leaves `active` for `to`. */
function release(c: Counters, r: Reservation, to: ReservationStatus): Counters {
  return to === 'purchased'
    ? bump(c, { reserved: c.reserved - r.quantity, purchased: c.purchased + r.quantity })
    : bump(c, { reserved: c.reserved - r.quantity });
}

function decideFinish(
  view: DecisionView,
  command: Extract<Command, { type: 'cancel' }>,
  event: 'CANCEL',
  nowMs: number,
): Decision {
  const meta = metaOf(command);
  const r = reservationOf(view, command.reservationId);
  const target = targetOf[event];

  if (r.status === target) {
    // Cancel is idempotent by the lifecycle itself: a replay, no second effect.
    return noChange({ kind: 'reservation', created: false, reservation: reservationView(r) }, view.counters);
  }
  const refused = refuseUnlessActive(view, r, meta, nowMs);
  if (refused !== null) return refused;
  const to = nextStatus(r.status, { type: event });
  if (to === null) throw new Error(`decide: lifecycle refused ${event} from active`);
  const after = release(view.counters, r, to);
  const finished = finish(r, to, nowMs);
  return {
    outcome: { kind: 'reservation', created: false, reservation: reservationView(finished) },
    events: [draft(after, nowMs, meta, { type: 'cancelled', reservationId: r.id, quantity: r.quantity })],
    counters: after,
    inserted: [],
    changed: [changeOf(r, to, nowMs)],
    reservations: [finished],
  };
}

function reservationOf(view: DecisionView, id: string): Reservation {
  const r = view.reservation(id);
  if (r === undefined) throw new Error(`decide: reservation ${id} not provided`);
  return r;
}

/**
 * A reservation that is no longer active is refused with its status's code; one whose expiresAt
 * has passed is expired in that moment, swept or not (docs/API.md), and refused as expired.
 * Null when it is active and not due: the command may go on.
 */
function refuseUnlessActive(view: DecisionView, r: Reservation, meta: Meta, nowMs: number): Decision | null {
  if (r.status !== 'active') {
    const code = rejectionForStatus[r.status];
    const rej = rejection(view.counters, nowMs, meta, code, `reservation ${r.id} is ${r.status}`, {
      reservationId: r.id,
      quantity: r.quantity,
    });
    return decisionOf(rej);
  }
  if (nowMs >= r.expiresAtMs) {
    // docs/API.md: a purchase or cancel after expiresAt expires the reservation in that moment.
    const expired = expireNow(view.counters, r, nowMs, meta);
    const rej = rejection(
      expired.counters,
      nowMs,
      meta,
      'reservation_expired',
      `reservation ${r.id} expired at ${isoOf(r.expiresAtMs)}`,
      { reservationId: r.id, quantity: r.quantity },
    );
    return {
      outcome: rej.outcome,
      events: [expired.event, rej.event],
      counters: rej.counters,
      inserted: [],
      changed: [expired.change],
      reservations: [expired.reservation],
    };
  }
  return null;
}

/**
 * Purchase of a line: `quantity` of it is bought (all when absent) and the rest goes back to
 * available in the same step. Sameness is judged on what is asked: the same purchase of a purchased
 * line answers it again; any other is refused as reservation_purchased.
 */
function decidePurchase(view: DecisionView, command: Extract<Command, { type: 'purchase' }>, nowMs: number): Decision {
  const meta = metaOf(command);
  const r = reservationOf(view, command.reservationId);
  const bought = command.quantity ?? r.quantity;
  if (r.status === 'purchased' && r.purchasedQuantity === bought) {
    return noChange({ kind: 'reservation', created: false, reservation: reservationView(r) }, view.counters);
  }
  const refused = refuseUnlessActive(view, r, meta, nowMs);
  if (refused !== null) return refused;
  if (bought > r.quantity) {
    const rej = rejection(
      view.counters,
      nowMs,
      meta,
      'quantity_exceeds_reservation',
      `asked to buy ${bought} of ${r.sku}, reserved ${r.quantity}`,
      { reservationId: r.id, quantity: bought },
    );
    return decisionOf(rej);
  }
  const to = nextStatus(r.status, { type: 'PURCHASE' });
  if (to === null) throw new Error('decide: lifecycle refused PURCHASE from active');
  const events: EventDraft[] = [];
  let c = view.counters;
  if (bought > 0) {
    c = bump(c, { reserved: c.reserved - bought, purchased: c.purchased + bought });
    events.push(draft(c, nowMs, meta, { type: 'purchased', reservationId: r.id, quantity: bought }));
  }
  if (bought < r.quantity) {
    c = bump(c, { reserved: c.reserved - (r.quantity - bought) });
    events.push(draft(c, nowMs, meta, { type: 'released', reservationId: r.id, quantity: r.quantity - bought }));
  }
  const finished = finish(r, to, nowMs, bought);
  return {
    outcome: { kind: 'reservation', created: false, reservation: reservationView(finished) },
    events,
    counters: c,
    inserted: [],
    changed: [changeOf(r, to, nowMs, bought)],
    reservations: [finished],
  };
}

/**
 * Extension: expiresAt becomes now + ttlSeconds, never later than createdAt plus the lifetime
 * cap; a reservation already at the cap is refused. Its status does not change.
 */
function decideExtend(view: DecisionView, command: Extract<Command, { type: 'extend' }>, nowMs: number): Decision {
  const meta = metaOf(command);
  const r = reservationOf(view, command.reservationId);
  const refused = refuseUnlessActive(view, r, meta, nowMs);
  if (refused !== null) return refused;
  const capMs = r.createdAtMs + reservationLifetimeMaxSeconds * 1000;
  if (r.expiresAtMs >= capMs) {
    const rej = rejection(
      view.counters,
      nowMs,
      meta,
      'reservation_lifetime_exceeded',
      `reservation ${r.id} already expires at its lifetime cap ${new Date(capMs).toISOString()}`,
      { reservationId: r.id, quantity: r.quantity },
    );
    return decisionOf(rej);
  }
  const expiresAtMs = Math.min(nowMs + command.ttlSeconds * 1000, capMs);
  const after = bump(view.counters, {});
  const extended: Reservation = { ...r, expiresAtMs };
  return {
    outcome: { kind: 'reservation', created: false, reservation: reservationView(extended) },
    events: [draft(after, nowMs, meta, { type: 'extended', reservationId: r.id, quantity: r.quantity, expiresAtMs })],
    counters: after,
    inserted: [],
    changed: [{ id: r.id, from: 'active', to: 'active', atMs: nowMs, purchasedQuantity: null, expiresAtMs }],
    reservations: [extended],
  };
}

function expireNow(c: Counters, r: Reservation, nowMs: number, meta: Meta) {
  const to = nextStatus(r.status, { type: 'EXPIRE' });
  if (to === null) throw new Error(`decide: lifecycle refused EXPIRE from ${r.status}`);
  const counters = release(c, r, to);
  const reservation = finish(r, to, nowMs);
  const event = draft(counters, nowMs, meta, {
    type: 'expired',
    reservationId: r.id,
    quantity: r.quantity,
    lateMs: nowMs - r.expiresAtMs,
  });
  const change = changeOf(r, to, nowMs);
  return { counters, reservation, event, change };
}

function decideExpire(view: DecisionView, command: Extract<Command, { type: 'expire' }>, nowMs: number): Decision {
  const r = view.reservation(command.reservationId);
  // The sweeper may race a purchase or cancel; whatever finished first wins, quietly.
  if (r === undefined || r.status !== 'active' || nowMs < r.expiresAtMs) {
    return noChange({ kind: 'noop' }, view.counters);
  }
  const expired = expireNow(view.counters, r, nowMs, metaOf(command));
  return {
    outcome: { kind: 'reservation', created: false, reservation: reservationView(expired.reservation) },
    events: [expired.event],
    counters: expired.counters,
    inserted: [],
    changed: [expired.change],
    reservations: [expired.reservation],
  };
}

function decideAdjust(view: DecisionView, command: Extract<Command, { type: 'adjust' }>, nowMs: number): Decision {
  const meta = metaOf(command);
  const c = view.counters;
  if (command.refusedAs !== undefined) {
    const { code, detail } = command.refusedAs;
    const r = rejection(c, nowMs, meta, code, detail, { delta: command.delta, reason: command.reason });
    return { outcome: r.outcome, events: [r.event], counters: r.counters, inserted: [], changed: [], reservations: [] };
  }
  const totalAfter = c.total + command.delta;
  const committed = c.reserved + c.purchased;
  if (totalAfter < committed) {
    const r = rejection(
      c,
      nowMs,
      meta,
      'insufficient_stock',
      `total would be ${totalAfter}, but ${committed} are reserved or purchased`,
      { delta: command.delta, reason: command.reason },
    );
    return { outcome: r.outcome, events: [r.event], counters: r.counters, inserted: [], changed: [], reservations: [] };
  }
  if (totalAfter > stockMax) {
    const r = rejection(
      c,
      nowMs,
      meta,
      'stock_limit_exceeded',
      `total would be ${totalAfter}, above the limit ${stockMax}`,
      { delta: command.delta, reason: command.reason },
    );
    return { outcome: r.outcome, events: [r.event], counters: r.counters, inserted: [], changed: [], reservations: [] };
  }
  const after = bump(c, { total: totalAfter });
  return {
    outcome: { kind: 'inventory', inventory: inventoryView(view.sku, after, view.activeReservations) },
    events: [draft(after, nowMs, meta, { type: 'stock_adjusted', delta: command.delta, reason: command.reason })],
    counters: after,
    inserted: [],
    changed: [],
    reservations: [],
  };
}

/** A product's first event: seq 1, its whole stock as total. */
export function productCreatedEvent(stock: number, requestId: string, nowMs: number): EventDraft {
  const counters: Counters = { total: stock, reserved: 0, purchased: 0, version: 1 };
  return draft(counters, nowMs, { requestId, idempotencyKey: null, source: 'api' }, { type: 'product_created' });
}

function noChange(outcome: Outcome, counters: Counters): Decision {
  return { outcome, events: [], counters, inserted: [], changed: [], reservations: [] };
}
