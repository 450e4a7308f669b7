import { isDeepStrictEqual } from 'node:util';
import { isFinal, type Answer } from './api-client.ts';
import type { DurabilityFindings, ExactlyOnceFindings } from './acknowledged.ts';
import type { Queryable } from './oracle.ts';
import { isCartOperation, scopeOf, type Attempted, type CartLine, type CartOperation } from './request-accounting.ts';

// What clients were told about carts (reservations of several products), checked against the
// tables in plain SQL, as acknowledged.ts does for one product: a cart is wholly there or wholly
// absent, as it was answered, and a keyed retry took effect once. Whether each reservation's rows
// agree with each other (one status, one expiry, one row per line) is the oracle's to say
// (oracle.ts, its cart-* checks), from the tables alone. A cart's lines carry no key in
// the audit log (the key is the cart's, in its route's or reservation's scope), so an effect is
// traced to the request that made it by the request id its events carry.

interface CartAttempt {
  readonly op: CartOperation;
  readonly answers: readonly Answer[];
}

interface LineRow {
  readonly sku: string;
  readonly quantity: number;
  readonly line: number;
  readonly lines: number;
  readonly status: string;
  readonly purchasedQuantity: number | null;
  readonly expiresAtMs: number;
}

interface EffectEvent {
  readonly sku: string;
  readonly type: string;
  readonly reservationId: string | null;
  readonly code: string | null;
}

/** A broken database can break every row; past this many, the SQL findings are not listed. */
const findingsListedMax = 1_000;
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const succeeded = (a: Answer) => a.status !== null && a.status < 300;
const what = (op: CartOperation) => `${op.kind} ${op.key}`;

function cartAttempts(attempted: readonly Attempted[]): CartAttempt[] {
  return attempted.flatMap(({ op, answers }) => (isCartOperation(op) ? [{ op, answers }] : []));
}

async function storedOutcomes(sql: Queryable, ops: readonly CartOperation[]): Promise<Map<string, any>> {
  const { rows } = await sql.query(
    `
    select k.sku as scope, k.key, k.outcome
      from idempotency_records k
      join unnest($1::text[], $2::text[]) as a (scope, key) on k.sku = a.scope and k.key = a.key`,
    [ops.map(scopeOf), ops.map((op) => op.key)],
  );
  return new Map(rows.map((r) => [`${r.scope}\n${r.key}`, r.outcome]));
}

async function lineRows(sql: Queryable, ids: readonly string[]): Promise<Map<string, LineRow[]>> {
  const { rows } = await sql.query(
    `
    select id::text, sku, quantity, line::int, lines::int, status, purchased_quantity,
           (extract(epoch from expires_at) * 1000)::float8 as expires_at_ms
      from reservations
     where id = any($1::uuid[])
     order by id, line`,
    [ids.filter((id) => uuidPattern.test(id))],
  );
  const byId = new Map<string, LineRow[]>();
  for (const r of rows) {
    const list = byId.get(r.id) ?? [];
    list.push({
      sku: r.sku,
      quantity: r.quantity,
      line: r.line,
      lines: r.lines,
      status: r.status,
      purchasedQuantity: r.purchased_quantity,
      expiresAtMs: r.expires_at_ms,
    });
    byId.set(r.id, list);
  }
  return byId;
}

/**
 * G5 for carts: every final answer is in the database as it was answered. Its key's stored outcome
 * is the answer (a 2xx body, or a 409's code); a 2xx names a reservation whose rows are exactly its
 * lines (one row per SKU, in the order answered, each knowing how many lines there are); a
 * purchase or cancel left every row in the status it answered (and a purchase with the quantities
 * it bought), and an extension every row with the expiry it answered.
 */
export async function cartDurability(sql: Queryable, attempted: readonly Attempted[]): Promise<DurabilityFindings> {
  const answered = cartAttempts(attempted).flatMap(({ op, answers }) =>
    answers.filter(isFinal).map((answer) => ({ op, answer })),
  );
  const outcomes = await storedOutcomes(
    sql,
    answered.map((a) => a.op),
  );
  const rows = await lineRows(
    sql,
    answered.filter((a) => succeeded(a.answer)).map((a) => String(a.answer.body?.id)),
  );
  const missing: string[] = [];
  for (const { op, answer } of answered) {
    const outcome = outcomes.get(`${scopeOf(op)}\n${op.key}`);
    const lines = rows.get(String(answer.body?.id));
    const why = succeeded(answer) ? successMismatch(op, answer.body, outcome, lines) : refusalMismatch(answer, outcome);
    if (why !== null) missing.push(`${what(op)} answered ${answer.status}: ${why}; rows ${JSON.stringify(lines)}`);
  }
  return { checked: answered.length, missing };
}

function successMismatch(
  op: CartOperation,
  body: any,
  outcome: any,
  rows: readonly LineRow[] | undefined,
): string | null {
  if (outcome === undefined) return 'the key is not remembered';
  if (!isDeepStrictEqual(outcome.reservation, body)) return 'the remembered outcome is not the answer';
  if (rows === undefined) return 'the reservation does not exist';
  const answeredLines = (body.lines as CartLine[]).map((l) => ({ sku: l.sku, quantity: l.quantity }));
  if (
    !isDeepStrictEqual(
      rows.map((r) => ({ sku: r.sku, quantity: r.quantity })),
      answeredLines,
    )
  )
    return 'its rows are not the lines answered';
  if (rows.some((r) => r.lines !== answeredLines.length)) return 'a row does not know how many lines there are';
  // A reservation may have moved on since it was reserved or extended; purchased and cancelled are final.
  if ((op.kind === 'cart-purchase' || op.kind === 'cart-cancel') && rows.some((r) => r.status !== body.status))
    return `a row is not ${body.status}`;
  if (op.kind === 'cart-purchase' && rows.some((r, i) => r.purchasedQuantity !== body.lines[i].purchasedQuantity))
    return 'a row bought another quantity';
  if (op.kind === 'cart-extend' && rows.some((r) => r.expiresAtMs !== Date.parse(body.expiresAt)))
    return 'a row has another expiry';
  return null;
}

function refusalMismatch(answer: Answer, outcome: any): string | null {
  if (outcome === undefined) return 'the key is not remembered';
  if (answer.status === 409 && !(outcome.kind === 'rejected' && outcome.code === answer.body?.code))
    return 'the key does not remember this rejection';
  return null;
}

/** The events the given requests wrote, by request id: their effects (all but rejections), or their rejections. */
async function effectsByRequest(
  sql: Queryable,
  requestIds: readonly string[],
  types: 'effects' | 'rejections',
): Promise<Map<string, EffectEvent[]>> {
  const { rows } = await sql.query(
    `
    select request_id, sku, type, reservation_id::text, code
      from inventory_events
     where request_id = any($1::text[]) and (type = 'rejected') = $2::boolean`,
    [[...requestIds], types === 'rejections'],
  );
  const byRequest = new Map<string, EffectEvent[]>();
  for (const r of rows) {
    const list = byRequest.get(r.request_id) ?? [];
    list.push({ sku: r.sku, type: r.type, reservationId: r.reservation_id, code: r.code });
    byRequest.set(r.request_id, list);
  }
  return byRequest;
}

/** The events an operation answered with `body` writes when it takes effect, as sorted "sku type" pairs. */
function expectedEffects(op: CartOperation, body: any): string[] {
  const lines = body.lines as { sku: string; quantity: number; purchasedQuantity?: number }[];
  const pairs = lines.flatMap((l) => {
    switch (op.kind) {
      case 'cart-reserve':
        return [`${l.sku} reserved`];
      case 'cart-cancel':
        return [`${l.sku} cancelled`];
      case 'cart-extend':
        return [`${l.sku} extended`];
      case 'cart-purchase': {
        const bought = l.purchasedQuantity ?? 0;
        return [
          ...(bought > 0 ? [`${l.sku} purchased`] : []),
          ...(l.quantity - bought > 0 ? [`${l.sku} released`] : []),
        ];
      }
      default: {
        const unreachable: never = op;
        return unreachable;
      }
    }
  });
  return pairs.sort();
}

/** Why the effects of one operation's requests are not one whole effect as answered, or null. */
function onceMismatch(
  op: CartOperation,
  answers: readonly Answer[],
  effects: ReadonlyMap<string, EffectEvent[]>,
): string | null {
  const first = answers.find(isFinal)!;
  const effective = answers.filter((a) => effects.has(a.requestId));
  if (!succeeded(first))
    return effective.length === 0
      ? null
      : `answered ${first.status}, but ${effective.length} of its requests wrote effects`;
  if (effective.length !== 1) return `answered ${first.status}, and ${effective.length} of its requests wrote effects`;
  const events = effects.get(effective[0]!.requestId)!;
  const observed = events.map((e) => `${e.sku} ${e.type}`).sort();
  if (!isDeepStrictEqual(observed, expectedEffects(op, first.body))) return `its effects are ${observed.join(', ')}`;
  if (events.some((e) => e.reservationId !== first.body.id)) return 'an effect names another reservation';
  return null;
}

/**
 * G2 for carts after retries: every keyed cart operation has one outcome (all its final answers
 * alike); when it succeeded, exactly one of its requests wrote its effects, one event per line as
 * answered (all lines reserved, bought or released, cancelled, extended), and when it was refused,
 * none did. Every reservation on `skus` (all of them made by cart-reserve operations) has exactly
 * one set of `reserved` events, one per line from one request, and was answered 201 to a client.
 */
export async function cartExactlyOnce(
  sql: Queryable,
  attempted: readonly Attempted[],
  skus: readonly string[],
): Promise<ExactlyOnceFindings> {
  const ops = cartAttempts(attempted);
  const effects = await effectsByRequest(
    sql,
    ops.flatMap((o) => o.answers.map((a) => a.requestId)),
    'effects',
  );
  const unanswered: string[] = [];
  const disagreeing: string[] = [];
  const notOnce: string[] = [];
  for (const { op, answers } of ops) {
    const [first, ...others] = answers.filter(isFinal);
    if (first === undefined) {
      unanswered.push(what(op));
      continue;
    }
    if (others.some((a) => a.status !== first.status || !isDeepStrictEqual(a.body, first.body)))
      disagreeing.push(what(op));
    const why = onceMismatch(op, answers, effects);
    if (why !== null) notOnce.push(`${what(op)}: ${why}`);
  }
  notOnce.push(...(await reservedOnce(sql, skus)));
  const answered = new Set(
    ops.flatMap(({ op, answers }) =>
      op.kind === 'cart-reserve' ? answers.filter((a) => a.status === 201).map((a) => String(a.body.id)) : [],
    ),
  );
  const { rows } = await sql.query(`select distinct id::text from reservations where sku = any($1::text[])`, [
    [...skus],
  ]);
  const unexplainedReservations = rows.map((r) => r.id as string).filter((id) => !answered.has(id));
  return { operations: ops.length, unanswered, disagreeing, notOnce, unexplainedReservations };
}

/** Reservations on `skus` without exactly one `reserved` event per line, all from one request. */
async function reservedOnce(sql: Queryable, skus: readonly string[]): Promise<string[]> {
  const { rows } = await sql.query(
    `
    select r.id::text, min(r.lines)::int as lines, count(e.seq)::int as reserved_events,
           count(distinct e.request_id)::int as requests
      from reservations r
      left join inventory_events e on e.reservation_id = r.id and e.sku = r.sku and e.type = 'reserved'
     where r.id in (select id from reservations where sku = any($1::text[]))
     group by r.id
    having count(e.seq) <> min(r.lines) or count(distinct e.request_id) <> 1
     limit $2::integer`,
    [[...skus], findingsListedMax],
  );
  return rows.map(
    (r) =>
      `reservation ${r.id} of ${r.lines} lines has ${r.reserved_events} reserved events from ${r.requests} requests`,
  );
}

export interface AllOrNothingFindings {
  /** Carts answered 201 with every line, in the order sent, active. */
  readonly reserved: number;
  /** Carts answered 409 insufficient_stock naming only lines of the cart that were short. */
  readonly refused: number;
  /** Carts answered anything else, or a 201 or 409 whose body says otherwise. */
  readonly unexpected: readonly string[];
  /** Refused carts without a `rejected` event (insufficient_stock) from one request on every product named. */
  readonly unaudited: readonly string[];
}

/**
 * All or nothing, as the clients saw it: every cart was answered 201 with all its lines, or 409
 * insufficient_stock listing short lines of its own (requested as sent, available below it), and
 * every refusal is audited on each product the cart named. Together with cartExactlyOnce (a 409
 * wrote no effect) and cartDurability (a 201's rows are its lines) a cart is wholly there or not.
 */
export async function cartsAllOrNothing(
  sql: Queryable,
  attempted: readonly Attempted[],
): Promise<AllOrNothingFindings> {
  const reserves = cartAttempts(attempted).flatMap(({ op, answers }) =>
    op.kind === 'cart-reserve' ? [{ op, answers }] : [],
  );
  const rejections = await effectsByRequest(
    sql,
    reserves.flatMap((o) => o.answers.map((a) => a.requestId)),
    'rejections',
  );
  let reserved = 0;
  let refused = 0;
  const unexpected: string[] = [];
  const unaudited: string[] = [];
  for (const { op, answers } of reserves) {
    const final = answers.find(isFinal);
    const sent = op.lines.map((l) => ({ sku: l.sku, quantity: l.quantity }));
    if (final?.status === 201 && final.body.status === 'active' && isDeepStrictEqual(final.body.lines, sent)) {
      reserved++;
    } else if (
      final?.status === 409 &&
      final.body.code === 'insufficient_stock' &&
      shortLinesOf(op.lines, final.body.lines)
    ) {
      refused++;
      const audited = answers.some((a) =>
        isDeepStrictEqual(
          (rejections.get(a.requestId) ?? []).map((e) => `${e.sku} ${e.code}`).sort(),
          op.lines.map((l) => `${l.sku} insufficient_stock`).sort(),
        ),
      );
      if (!audited) unaudited.push(what(op));
    } else {
      unexpected.push(`${what(op)}: ${final?.status ?? 'no final answer'} ${JSON.stringify(final?.body)}`);
    }
  }
  return { reserved, refused, unexpected, unaudited };
}

/** A 409's `lines`: at least one, each a line of the cart asked as sent and short when decided. */
function shortLinesOf(sent: readonly CartLine[], short: unknown): boolean {
  if (!Array.isArray(short) || short.length === 0) return false;
  return short.every(
    (s: { sku: string; requested: number; available: number }) =>
      sent.some((l) => l.sku === s.sku && l.quantity === s.requested) && s.available < s.requested,
  );
}
