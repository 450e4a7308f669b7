import { stockAfter } from '../../src/engine/replay.ts';
import { eventHash } from '../../src/engine/event-hash.ts';
import { nextStatus, type LifecycleEvent } from '../../src/engine/lifecycle.ts';
import type { EventDraft, EventType, RejectionCode, ReservationStatus } from '../../src/engine/types.ts';

/**
 * The guarantees of docs/DESIGN.md checked from the database alone, as the property and chaos tests
 * see them: whatever the engine did, the rows it left must satisfy all of these. Each violation
 * names its guarantee and product, so a failing test reads as "G7 on P-3: event 4 says ...".
 */
export interface Violation {
  readonly guarantee: string;
  readonly sku: string | null;
  readonly message: string;
}

/** Anything that runs a query: a pg Pool or Client. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

interface ProductRow {
  sku: string;
  initial_stock: number;
  total: number;
  reserved: number;
  purchased: number;
  version: number;
  active_sum: number;
  purchased_sum: number;
}

interface EventRow {
  sku: string;
  seq: number;
  type: EventType;
  reservation_id: string | null;
  quantity: number | null;
  delta: number | null;
  reason: string | null;
  code: RejectionCode | null;
  request_id: string | null;
  idempotency_key: string | null;
  source: 'api' | 'sweeper';
  late_ms: number | null;
  total: number;
  reserved: number;
  purchased: number;
  at_ms: number;
  hash: string;
}

interface ReservationRow {
  id: string;
  sku: string;
  quantity: number;
  status: ReservationStatus;
}

// Numbers come back as float8 so that they are JS numbers (every value here is < 2^53).
const productsSql = `
select p.sku, p.initial_stock::float8, p.total::float8, p.reserved::float8, p.purchased::float8, p.version::float8,
       coalesce((select sum(r.quantity) from reservations r where r.sku = p.sku and r.status = 'active'), 0)::float8 as active_sum,
       coalesce((select sum(r.quantity) from reservations r where r.sku = p.sku and r.status = 'purchased'), 0)::float8 as purchased_sum
  from products p
 where $1::text[] is null or p.sku = any($1::text[])
 order by p.sku`;

const eventsSql = `
select sku, seq::float8, type, reservation_id::text, quantity, delta::float8, reason, code, request_id,
       idempotency_key, source, late_ms::float8, total::float8, reserved::float8, purchased::float8,
       (extract(epoch from at) * 1000)::float8 as at_ms, hash
  from inventory_events
 where $1::text[] is null or sku = any($1::text[])
 order by sku, seq`;

const reservationsSql = `
select id::text, sku, quantity, status
  from reservations
 where $1::text[] is null or sku = any($1::text[])`;

const recordsSql = `
select sku, key, outcome
  from idempotency_records
 where $1::text[] is null or sku = any($1::text[])`;

/**
 * Every violation of G1, G3, G4 (version = number of events), G7 (events replay to the row,
 * the hash chain holds, each reservation's history is a path of the lifecycle) and of the
 * counters-equal-sums bookkeeping, for the given products (all when `skus` is omitted).
 */
export async function databaseViolations(sql: Queryable, skus?: readonly string[]): Promise<Violation[]> {
  const filter = skus === undefined ? null : [...skus];
  const [products, events, reservations, records] = await Promise.all([
    sql.query(productsSql, [filter]).then((r) => r.rows as ProductRow[]),
    sql.query(eventsSql, [filter]).then((r) => r.rows as EventRow[]),
    sql.query(reservationsSql, [filter]).then((r) => r.rows as ReservationRow[]),
    sql.query(recordsSql, [filter]).then((r) => r.rows as { sku: string; key: string; outcome: any }[]),
  ]);
  const eventsBySku = groupBy(events, (e) => e.sku);
  const eventsByReservation = groupBy(events.filter((e) => e.reservation_id !== null && e.type !== 'rejected'), (e) => e.reservation_id!);
  const violations: Violation[] = [];
  for (const p of products) {
    violations.push(...counterViolations(p));
    violations.push(...replayViolations(p, eventsBySku.get(p.sku) ?? []));
  }
  for (const r of reservations) violations.push(...lifecycleViolations(r, eventsByReservation.get(r.id) ?? []));
  violations.push(...recordViolations(records, new Map(reservations.map((r) => [r.id, r]))));
  return violations;
}

function counterViolations(p: ProductRow): Violation[] {
  const v: Violation[] = [];
  const add = (guarantee: string, ok: boolean, message: string) => {
    if (!ok) v.push({ guarantee, sku: p.sku, message });
  };
  add('G3', p.total >= 0 && p.reserved >= 0 && p.purchased >= 0, `negative counter: total ${p.total}, reserved ${p.reserved}, purchased ${p.purchased}`);
  add('G1', p.reserved + p.purchased <= p.total, `oversold: reserved ${p.reserved} + purchased ${p.purchased} > total ${p.total}`);
  add('G4', p.reserved === p.active_sum, `reserved ${p.reserved} but its active reservations hold ${p.active_sum}`);
  add('G4', p.purchased === p.purchased_sum, `purchased ${p.purchased} but its purchased reservations hold ${p.purchased_sum}`);
  return v;
}


function draftOf(e: EventRow): EventDraft {
  return {
    seq: e.seq, type: e.type, reservationId: e.reservation_id, quantity: e.quantity, delta: e.delta, reason: e.reason,
    code: e.code, requestId: e.request_id, idempotencyKey: e.idempotency_key, source: e.source, lateMs: e.late_ms,
    expiresAtMs: null,
    total: e.total, reserved: e.reserved, purchased: e.purchased, atMs: e.at_ms,
  };
}

/** G4 and G7: seq runs 1..version without gaps, each event states the replayed counters, the chain holds. */
function replayViolations(p: ProductRow, events: readonly EventRow[]): Violation[] {
  const v: Violation[] = [];
  if (events.length !== p.version) v.push({ guarantee: 'G4', sku: p.sku, message: `version ${p.version} but ${events.length} events` });
  let counters = { total: 0, reserved: 0, purchased: 0 };
  let hash = '';
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.seq !== i + 1) {
      v.push({ guarantee: 'G4', sku: p.sku, message: `event ${i + 1} has seq ${e.seq}` });
      break;
    }
    if ((i === 0) !== (e.type === 'product_created')) v.push({ guarantee: 'G7', sku: p.sku, message: `event ${e.seq} is ${e.type}` });
    counters = stockAfter(counters, e) ?? counters;
    const stated = { total: e.total, reserved: e.reserved, purchased: e.purchased };
    if (!sameCounters(counters, stated)) {
      v.push({ guarantee: 'G7', sku: p.sku, message: `event ${e.seq} (${e.type}) states ${fmt(stated)} but replay gives ${fmt(counters)}` });
      counters = stated;
    }
    hash = eventHash(hash, p.sku, draftOf(e));
    if (hash !== e.hash) {
      v.push({ guarantee: 'G7', sku: p.sku, message: `event ${e.seq} breaks the hash chain` });
      hash = e.hash;
    }
  }
  const row = { total: p.total, reserved: p.reserved, purchased: p.purchased };
  if (events.length > 0 && !sameCounters(counters, row)) {
    v.push({ guarantee: 'G7', sku: p.sku, message: `events replay to ${fmt(counters)} but the row holds ${fmt(row)}` });
  }
  if (events[0] !== undefined && events[0].total !== p.initial_stock) {
    v.push({ guarantee: 'G7', sku: p.sku, message: `product_created states total ${events[0].total}, initial stock is ${p.initial_stock}` });
  }
  return v;
}

const lifecycleEventOf: Partial<Record<EventType, LifecycleEvent>> = {
  purchased: { type: 'PURCHASE' },
  cancelled: { type: 'CANCEL' },
  expired: { type: 'EXPIRE' },
};

/** G7: a reservation's events are `reserved` then at most one lifecycle step, ending in its status. */
function lifecycleViolations(r: ReservationRow, events: readonly EventRow[]): Violation[] {
  const types = events.map((e) => e.type);
  const fail = (message: string): Violation[] => [{ guarantee: 'G7', sku: r.sku, message: `reservation ${r.id}: ${message} (events: ${types.join(', ')})` }];
  if (types[0] !== 'reserved') return fail('its first event is not reserved');
  if (events[0]!.quantity !== r.quantity) return fail(`reserved ${events[0]!.quantity}, row says ${r.quantity}`);
  let status: ReservationStatus | null = 'active';
  for (const e of events.slice(1)) {
    const step = lifecycleEventOf[e.type];
    status = step === undefined || status === null ? null : nextStatus(status, step);
    if (status === null) return fail(`${e.type} is not a lifecycle step from where it was`);
  }
  if (status !== r.status) return fail(`history ends in ${status}, row says ${r.status}`);
  return [];
}

/** G2: a remembered reservation outcome names a reservation that exists, with its quantity. */
function recordViolations(records: readonly { sku: string; key: string; outcome: any }[], reservations: Map<string, ReservationRow>): Violation[] {
  const v: Violation[] = [];
  for (const { sku, key, outcome } of records) {
    if (outcome?.kind !== 'reservation' || outcome.created !== true) continue;
    const row = reservations.get(outcome.reservation.id);
    if (row === undefined || row.sku !== sku || row.quantity !== outcome.reservation.quantity) {
      v.push({ guarantee: 'G2', sku, message: `key ${key} remembers reservation ${outcome.reservation.id} of ${outcome.reservation.quantity}, which is not in the database` });
    }
  }
  return v;
}

function sameCounters(a: { total: number; reserved: number; purchased: number }, b: { total: number; reserved: number; purchased: number }): boolean {
  return a.total === b.total && a.reserved === b.reserved && a.purchased === b.purchased;
}

function fmt(c: { total: number; reserved: number; purchased: number }): string {
  return `total ${c.total}/reserved ${c.reserved}/purchased ${c.purchased}`;
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [item]);
    else group.push(item);
  }
  return groups;
}
