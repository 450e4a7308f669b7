import { decideBatch, type Base, type BatchDecision } from './decide-batch.ts';
import { fingerprintOf } from './fingerprint.ts';
import type { BatchWrite, Command, CommandResult, Outcome, RejectionCode, Reservation } from './types.ts';
import { reservationView } from './views.ts';

export interface CartLine {
  readonly sku: string;
  readonly quantity: number;
}

/** One operation on a reservation of several products (a cart), all of its lines at once. */
export type CartOp =
  | {
      readonly type: 'reserve';
      readonly reservationId: string;
      readonly lines: readonly CartLine[];
      readonly ttlSeconds: number;
      readonly idempotencyKey: string;
      readonly requestId: string;
    }
  | {
      readonly type: 'purchase';
      readonly reservationId: string;
      /** What to buy of each line; null buys every line whole. A line left out is bought none of. */
      readonly lines: readonly CartLine[] | null;
      readonly idempotencyKey: string | null;
      readonly requestId: string;
    }
  | {
      readonly type: 'cancel';
      readonly reservationId: string;
      readonly idempotencyKey: string | null;
      readonly requestId: string;
    }
  | {
      readonly type: 'extend';
      readonly reservationId: string;
      readonly ttlSeconds: number;
      readonly idempotencyKey: string | null;
      readonly requestId: string;
    }
  | { readonly type: 'expire'; readonly reservationId: string };

/** One product of a cart as it is decided: its state, and its line if memory does not hold it. */
export interface CartProduct {
  readonly base: Base;
  readonly loaded: readonly Reservation[];
}

export type CartDecision =
  /**
   * `writes` is empty when nothing changes (a replay by the lifecycle, an expiry not due).
   * `products` holds each product's own decision: what it leaves, for the next cart of a batch.
   */
  | {
      readonly type: 'decided';
      readonly writes: readonly BatchWrite[];
      readonly outcome: Outcome;
      readonly products: ReadonlyMap<string, BatchDecision>;
    }
  /** A product's view is stale (another instance wrote): reload it and decide again. */
  | { readonly type: 'stale'; readonly sku: string }
  | Extract<CommandResult, { type: 'failed' }>;

/** What a cart operation asked for, compared under one Idempotency-Key. */
export function cartFingerprintOf(op: CartOp): string {
  switch (op.type) {
    case 'reserve':
      return `cart-reserve:${op.ttlSeconds}:${JSON.stringify(op.lines)}`;
    case 'purchase':
      return `cart-purchase:${op.reservationId}:${op.lines === null ? '*' : JSON.stringify(op.lines)}`;
    case 'cancel':
    case 'expire':
      return `cart-${op.type}:${op.reservationId}`;
    case 'extend':
      return `cart-extend:${op.reservationId}:${op.ttlSeconds}`;
  }
}

/**
 * Each product's command for a cart operation. `existing` holds the reservation's lines (none for
 * a reserve). A purchase naming a SKU the cart does not hold can never succeed.
 */
export function lineCommands(
  op: CartOp,
  existing: readonly Reservation[],
): Map<string, Command> | Extract<CartDecision, { type: 'failed' }> {
  const commands = new Map<string, Command>();
  const id = op.reservationId;
  if (op.type === 'reserve') {
    op.lines.forEach((l, i) =>
      commands.set(l.sku, {
        type: 'reserve',
        reservationId: id,
        quantity: l.quantity,
        ttlSeconds: op.ttlSeconds,
        idempotencyKey: null,
        requestId: op.requestId,
        line: i,
        lines: op.lines.length,
      }),
    );
    return commands;
  }
  const asked = new Map((op.type === 'purchase' ? (op.lines ?? []) : []).map((l) => [l.sku, l.quantity]));
  for (const sku of asked.keys()) {
    if (!existing.some((r) => r.sku === sku))
      return { type: 'failed', code: 'validation_failed', reason: `${sku} is not a line of reservation ${id}` };
  }
  for (const r of existing) {
    commands.set(r.sku, commandFor(op, r, asked));
  }
  return commands;
}

function commandFor(
  op: Exclude<CartOp, { type: 'reserve' }>,
  r: Reservation,
  asked: ReadonlyMap<string, number>,
): Command {
  const id = r.id;
  switch (op.type) {
    case 'purchase':
      return {
        type: 'purchase',
        reservationId: id,
        quantity: op.lines === null ? r.quantity : (asked.get(r.sku) ?? 0),
        idempotencyKey: null,
        requestId: op.requestId,
      };
    case 'cancel':
      return { type: 'cancel', reservationId: id, idempotencyKey: null, requestId: op.requestId };
    case 'extend':
      return {
        type: 'extend',
        reservationId: id,
        ttlSeconds: op.ttlSeconds,
        idempotencyKey: null,
        requestId: op.requestId,
      };
    case 'expire':
      return { type: 'expire', reservationId: id };
  }
}

/**
 * Decides a cart operation over all its products at once. Pure. Every line is decided on its own
 * product first; if any line is refused, the whole cart is: each product records the refusal (its
 * own, or the cart's code) and nothing else - all or nothing. Products are decided in SKU order.
 */
export function decideCart(
  products: ReadonlyMap<string, CartProduct>,
  commands: ReadonlyMap<string, Command>,
  nowMs: number,
): CartDecision {
  const skus = [...commands.keys()].sort();
  const decided = new Map<string, BatchDecision>();
  for (const sku of skus) {
    const one = decideOne(products, sku, commands.get(sku)!, nowMs);
    if (one.type === 'stale') return { type: 'stale', sku };
    decided.set(sku, one.decision);
  }
  const refused = firstRefusal(skus, decided);
  if (refused === null) return accepted(skus, decided, products);
  const all = new Map<string, BatchDecision>();
  for (const sku of skus) {
    const own = decided.get(sku)!;
    const command = commands.get(sku)!;
    if (outcomeOf(own).kind === 'rejected') {
      all.set(sku, own);
      continue;
    }
    const quantity = 'quantity' in command && command.quantity !== undefined ? command.quantity : 0;
    const refuse: Command = {
      type: 'refuse',
      reservationId: reservationOfCommand(command),
      quantity,
      code: refused.code,
      detail: refused.detail,
      newReservation: command.type === 'reserve',
      idempotencyKey: null,
      requestId: requestIdOf(command),
    };
    const again = decideOne(products, sku, refuse, nowMs);
    if (again.type === 'stale') return { type: 'stale', sku };
    all.set(sku, again.decision);
  }
  return {
    type: 'decided',
    writes: writesOf(skus, all),
    outcome: cartRefusal(refused, skus, decided, commands, products),
    products: all,
  };
}

function decideOne(products: ReadonlyMap<string, CartProduct>, sku: string, command: Command, nowMs: number) {
  const product = products.get(sku)!;
  const outcome = decideBatch(
    product.base,
    [{ command, fingerprint: fingerprintOf(command) }],
    product.loaded,
    nowMs,
    new Map(),
  );
  return outcome;
}

function outcomeOf(d: BatchDecision): Outcome {
  const result = d.results[0]!;
  // Line commands carry no key and name a reservation the cart found: they are always decided.
  if (result.type !== 'done') throw new Error(`decideCart: a line was not decided (${result.code})`);
  return result.outcome;
}

function firstRefusal(skus: readonly string[], decided: ReadonlyMap<string, BatchDecision>) {
  for (const sku of skus) {
    const outcome = outcomeOf(decided.get(sku)!);
    if (outcome.kind === 'rejected') return outcome;
  }
  return null;
}

function accepted(
  skus: readonly string[],
  decided: ReadonlyMap<string, BatchDecision>,
  products: ReadonlyMap<string, CartProduct>,
): CartDecision {
  const outcomes = skus.map((sku) => outcomeOf(decided.get(sku)!));
  if (outcomes.every((o) => o.kind === 'noop')) {
    return { type: 'decided', writes: [], outcome: { kind: 'noop' }, products: decided };
  }
  const lines = skus.map((sku) => lineAfter(sku, decided.get(sku)!, products.get(sku)!));
  const created = outcomes.some((o) => o.kind === 'reservation' && o.created);
  return {
    type: 'decided',
    writes: writesOf(skus, decided),
    outcome: { kind: 'reservation', created, reservation: reservationView(...lines) },
    products: decided,
  };
}

/** A product's line after the decision: changed by it, or as memory or the database holds it. */
function lineAfter(sku: string, d: BatchDecision, product: CartProduct): Reservation {
  const changed = [...d.reservations.values()][0];
  if (changed !== undefined) return changed;
  const outcome = outcomeOf(d);
  const id = outcome.kind === 'reservation' ? outcome.reservation.id : '';
  const r = product.base.lookup(id) ?? product.loaded.find((l) => l.id === id);
  if (r === undefined) throw new Error(`decideCart: the line of ${sku} is unknown`);
  return r;
}

function writesOf(skus: readonly string[], decided: ReadonlyMap<string, BatchDecision>): BatchWrite[] {
  return skus.flatMap((sku) => {
    const write = decided.get(sku)!.write;
    return write === null ? [] : [write];
  });
}

function cartRefusal(
  refused: Extract<Outcome, { kind: 'rejected' }>,
  skus: readonly string[],
  decided: ReadonlyMap<string, BatchDecision>,
  commands: ReadonlyMap<string, Command>,
  products: ReadonlyMap<string, CartProduct>,
): Outcome {
  if (refused.code !== 'insufficient_stock') return { kind: 'rejected', code: refused.code, detail: refused.detail };
  const short = [];
  for (const sku of skus) {
    const command = commands.get(sku)!;
    if (command.type !== 'reserve' || outcomeOf(decided.get(sku)!).kind !== 'rejected') continue;
    const c = products.get(sku)!.base.counters;
    short.push({ sku, requested: command.quantity, available: c.total - c.reserved - c.purchased });
  }
  const detail = short.map((l) => `${l.sku}: requested ${l.requested}, available ${l.available}`).join('; ');
  return { kind: 'rejected', code: 'insufficient_stock' as RejectionCode, detail, lines: short };
}

function requestIdOf(command: Command): string {
  return command.type === 'expire' ? '' : command.requestId;
}

function reservationOfCommand(command: Command): string {
  if (command.type === 'adjust') throw new Error('decideCart: a cart has no stock adjustments');
  return command.reservationId;
}
