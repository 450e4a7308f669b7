import { isDeepStrictEqual } from 'node:util';
import { isFinal, type Answer } from './api-client.ts';
import type { Queryable } from './oracle.ts';
import { isKeyedProductOperation, type Attempted, type KeyedOperation } from './request-accounting.ts';

// What the clients were told, checked against the tables in plain SQL: the other half of the
// oracle (scripts/lib/oracle.ts checks the tables alone). Findings are values, so that a test can
// assert them and the proof can report them.

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The event a keyed operation writes when it takes effect. */
const effectOf: Record<KeyedOperation['kind'], string> = {
  reserve: 'reserved',
  purchase: 'purchased',
  cancel: 'cancelled',
};

interface ReservationRow {
  readonly sku: string;
  readonly quantity: number;
  readonly status: string;
}

interface KeyedAttempt {
  readonly op: KeyedOperation;
  readonly answers: readonly Answer[];
}

/** The keyed operations on one product each (operations on carts are checked in cart-acknowledged.ts). */
function keyed(attempted: readonly Attempted[]): KeyedAttempt[] {
  return attempted.flatMap(({ op, answers }) => (isKeyedProductOperation(op) ? [{ op, answers }] : []));
}

const recordKey = (sku: string, key: string) => `${sku}\n${key}`;
const succeeded = (a: Answer) => a.status !== null && a.status < 300;

async function storedOutcomes(sql: Queryable, ops: readonly KeyedOperation[]): Promise<Map<string, any>> {
  const { rows } = await sql.query(
    `
    select k.sku, k.key, k.outcome
      from idempotency_records k
      join unnest($1::text[], $2::text[]) as a (sku, key) on k.sku = a.sku and k.key = a.key`,
    [ops.map((op) => op.sku), ops.map((op) => op.key)],
  );
  return new Map(rows.map((r) => [recordKey(r.sku, r.key), r.outcome]));
}

async function reservationRows(sql: Queryable, ids: readonly string[]): Promise<Map<string, ReservationRow>> {
  const { rows } = await sql.query(
    `
    select id::text, sku, quantity, status
      from reservations
     where id = any($1::uuid[])`,
    [ids.filter((id) => uuidPattern.test(id))],
  );
  return new Map(rows.map((r) => [r.id, { sku: r.sku, quantity: r.quantity, status: r.status }]));
}

export interface DurabilityFindings {
  /** Final answers compared with the database. */
  readonly checked: number;
  /** One line per final answer the database does not hold as it was answered. */
  readonly missing: readonly string[];
}

/**
 * G5: every final answer a client saw is in the database with that outcome: its key's stored
 * outcome is the answer (a 2xx body, or a 409's code), a 2xx names a reservation row of that
 * product and quantity, and a purchase or cancel left that row in the status it answered (a
 * reservation may have moved on since it was answered).
 */
export async function durability(sql: Queryable, attempted: readonly Attempted[]): Promise<DurabilityFindings> {
  const answered = keyed(attempted).flatMap(({ op, answers }) =>
    answers.filter(isFinal).map((answer) => ({ op, answer })),
  );
  const outcomes = await storedOutcomes(
    sql,
    answered.map((a) => a.op),
  );
  const ids = answered.filter((a) => succeeded(a.answer)).map((a) => String(a.answer.body?.id));
  const rows = await reservationRows(sql, ids);
  const missing: string[] = [];
  for (const { op, answer } of answered) {
    const outcome = outcomes.get(recordKey(op.sku, op.key));
    const why = succeeded(answer)
      ? successMismatch(op, answer.body, outcome, rows.get(String(answer.body?.id)))
      : refusalMismatch(answer, outcome);
    if (why === null) continue;
    const row = rows.get(String(answer.body?.id));
    missing.push(
      `${op.kind} ${op.sku} ${op.key} answered ${answer.status}: ${why}; ` +
        `stored ${JSON.stringify(outcome)}, row ${JSON.stringify(row)}`,
    );
  }
  return { checked: answered.length, missing };
}

function successMismatch(op: KeyedOperation, body: any, outcome: any, row: ReservationRow | undefined): string | null {
  if (outcome === undefined) return 'the key is not remembered';
  if (!isDeepStrictEqual(outcome.reservation, body)) return 'the remembered outcome is not the answer';
  if (row === undefined) return 'the reservation does not exist';
  if (row.sku !== body.sku || row.quantity !== body.quantity) return 'the reservation is not the one answered';
  if (op.kind !== 'reserve' && row.status !== body.status) return `the reservation is ${row.status}`;
  return null;
}

/** A 4xx is remembered too: a 409 as the rejection with its code, any other as some outcome. */
function refusalMismatch(answer: Answer, outcome: any): string | null {
  if (outcome === undefined) return 'the key is not remembered';
  if (answer.status === 409 && !(outcome.kind === 'rejected' && outcome.code === answer.body?.code)) {
    return 'the key does not remember this rejection';
  }
  return null;
}

export interface ExactlyOnceFindings {
  /** Keyed operations checked. */
  readonly operations: number;
  /** Operations without a final answer: still in doubt. */
  readonly unanswered: readonly string[];
  /** Operations whose final answers (retries included) are not all the same. */
  readonly disagreeing: readonly string[];
  /** Operations answered 2xx whose key has not exactly one effect event, or answered 4xx and has one. */
  readonly notOnce: readonly string[];
  /** Reservation rows of the products that no client was answered 201 for. */
  readonly unexplainedReservations: readonly string[];
}

async function effectCounts(sql: Queryable, skus: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await sql.query(
    `
    select sku, idempotency_key, type, count(*)::int as n
      from inventory_events
     where sku = any($1::text[]) and idempotency_key is not null and type in ('reserved', 'purchased', 'cancelled')
     group by sku, idempotency_key, type`,
    [[...skus]],
  );
  return new Map(rows.map((e) => [`${recordKey(e.sku, e.idempotency_key)}\n${e.type}`, e.n as number]));
}

/**
 * G2 after retries: every keyed operation has one outcome (all its final answers are the same), its
 * key took effect exactly once when it succeeded and never when it was refused, and the
 * reservations of `skus` are exactly those some client was answered 201 for.
 */
export async function exactlyOnce(
  sql: Queryable,
  attempted: readonly Attempted[],
  skus: readonly string[],
): Promise<ExactlyOnceFindings> {
  const ops = keyed(attempted);
  const effects = await effectCounts(sql, skus);
  const unanswered: string[] = [];
  const disagreeing: string[] = [];
  const notOnce: string[] = [];
  for (const { op, answers } of ops) {
    const what = `${op.kind} ${op.sku} ${op.key}`;
    const [first, ...others] = answers.filter(isFinal);
    if (first === undefined) {
      unanswered.push(what);
      continue;
    }
    if (others.some((a) => a.status !== first.status || !isDeepStrictEqual(a.body, first.body))) disagreeing.push(what);
    const n = effects.get(`${recordKey(op.sku, op.key)}\n${effectOf[op.kind]}`) ?? 0;
    if (n !== (succeeded(first) ? 1 : 0)) {
      notOnce.push(`${what}: answered ${first.status}, ${n} ${effectOf[op.kind]} events`);
    }
  }
  const answered = new Set(
    ops.flatMap(({ op, answers }) =>
      op.kind === 'reserve' ? answers.filter((a) => a.status === 201).map((a) => String(a.body.id)) : [],
    ),
  );
  const { rows } = await sql.query(`select id::text from reservations where sku = any($1::text[])`, [[...skus]]);
  const unexplainedReservations = rows.map((r) => r.id as string).filter((id) => !answered.has(id));
  return { operations: ops.length, unanswered, disagreeing, notOnce, unexplainedReservations };
}
