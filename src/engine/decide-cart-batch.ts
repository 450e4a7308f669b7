import { assertCounters, mergedChange, type Base, type BatchDecision } from './decide-batch.ts';
import { decideCart, lineCommands, type CartOp, type CartProduct } from './decide-cart.ts';
import { assert } from './errors.ts';
import type { AuditEvent, BatchWrite, CommandResult, IdempotencyRecord, Reservation, StatusChange } from './types.ts';

/** A keyed cart operation's key, where it lives (scopeOf) and what it asked for. */
export interface CartKey {
  readonly scope: string;
  readonly key: string;
  readonly fingerprint: string;
}

/** One cart operation of a batch, as the cart lane hands it over. */
export interface CartToDecide {
  readonly op: CartOp;
  /** Its products, sorted: the lines of a new cart, or those of the reservation. */
  readonly skus: readonly string[];
  /** The reservation's lines as known before the batch (none for a new cart). */
  readonly existing: readonly Reservation[];
  /** Null for an operation without a key. */
  readonly key: CartKey | null;
}

export type CartBatchDecision =
  | {
      readonly type: 'decided';
      /** One per cart, in the batch's order. */
      readonly results: readonly CommandResult[];
      /** At most one per product, in SKU order: every cart's writes to it, one after another. */
      readonly writes: readonly BatchWrite[];
      /** How many carts wrote to each product (for the observer). */
      readonly cartsBySku: ReadonlyMap<string, number>;
      /** Each product the batch wrote to as it leaves it: what a batch decided on top of it starts from. */
      readonly after: ReadonlyMap<string, Base>;
    }
  /** A product's view is stale (another instance wrote): reload it and decide the batch again. */
  | { readonly type: 'stale'; readonly sku: string };

/**
 * Decides a batch of cart operations, one after another in the batch's order, each on the state
 * the ones before it leave: exactly what deciding them one by one and committing each would give
 * (a property test says so). Each cart is all or nothing on its own (decideCart): a refused cart
 * leaves only its rejections, and the carts after it are decided as if it had not asked. A keyed
 * cart's record rides with its first product's write, also when it changes nothing. Pure.
 * `bases` holds every product the batch names; null for one that does not exist.
 */
export function decideCartBatch(
  bases: ReadonlyMap<string, Base | null>,
  carts: readonly CartToDecide[],
  nowMs: number,
): CartBatchDecision {
  const runs = new Map<string, ProductRun>();
  const results: CommandResult[] = [];
  for (const [i, cart] of carts.entries()) {
    const decided = decideOneCart(bases, runs, cart, i, nowMs);
    if (decided.type === 'stale') return decided;
    results.push(decided.result);
  }
  const writes: BatchWrite[] = [];
  const cartsBySku = new Map<string, number>();
  const after = new Map<string, Base>();
  for (const sku of [...runs.keys()].sort()) {
    const run = runs.get(sku)!;
    const write = run.write(nowMs);
    if (write === null) continue;
    writes.push(write);
    cartsBySku.set(sku, run.carts);
    after.set(sku, run.current);
  }
  return { type: 'decided', results, writes, cartsBySku, after };
}

function decideOneCart(
  bases: ReadonlyMap<string, Base | null>,
  runs: Map<string, ProductRun>,
  cart: CartToDecide,
  index: number,
  nowMs: number,
): { type: 'decided'; result: CommandResult } | { type: 'stale'; sku: string } {
  const unknown = cart.skus.filter((sku) => bases.get(sku) === null);
  if (unknown.length > 0) {
    const reason = `no product ${unknown.join(', ')}`;
    return { type: 'decided', result: { type: 'failed', code: 'product_not_found', reason, unknownSkus: unknown } };
  }
  const commands = lineCommands(cart.op, cart.existing);
  if ('type' in commands) return { type: 'decided', result: commands };
  const products = new Map<string, CartProduct>();
  for (const sku of cart.skus) {
    const base = runOf(bases, runs, sku).current;
    products.set(sku, { base, loaded: cart.existing.filter((r) => r.sku === sku && base.lookup(r.id) === undefined) });
  }
  const decision = decideCart(products, commands, nowMs);
  if (decision.type === 'stale') return decision;
  if (decision.type === 'failed') return { type: 'decided', result: decision };
  for (const [sku, d] of decision.products) runs.get(sku)!.take(d, index);
  if (cart.key !== null) {
    const { scope, key, fingerprint } = cart.key;
    // Any product of the transaction would do; the first one the cart names, whatever it wrote.
    runs.get(cart.skus[0]!)!.remember({ scope, key, fingerprint, outcome: decision.outcome }, index);
  }
  return { type: 'decided', result: { type: 'done', outcome: decision.outcome, replayed: false } };
}

function runOf(bases: ReadonlyMap<string, Base | null>, runs: Map<string, ProductRun>, sku: string): ProductRun {
  let run = runs.get(sku);
  if (run === undefined) {
    const base = bases.get(sku);
    assert(base !== undefined && base !== null, `the batch holds product ${sku}`);
    run = new ProductRun(base);
    runs.set(sku, run);
  }
  return run;
}

/** One product over a batch: the state the carts so far leave, and everything they write. */
class ProductRun {
  /** Reservations the batch created or changed, as they are now. */
  private readonly changes = new Map<string, Reservation>();
  current: Base;
  /** Carts that write to this product, and the last of them. */
  carts = 0;
  private lastCart = -1;
  private readonly inserted: Reservation[] = [];
  private readonly changed = new Map<string, StatusChange>();
  private readonly events: AuditEvent[] = [];
  private readonly idempotency: IdempotencyRecord[] = [];

  constructor(private readonly first: Base) {
    this.current = first;
  }

  /** A cart's decision on this product, decided on `current`. */
  take(d: BatchDecision, cart: number): void {
    const write = d.write;
    if (write === null) return;
    assert(
      write.versionBefore === this.current.counters.version && write.hashBefore === this.current.lastHash,
      'a cart of a batch is decided on the state the carts before it leave',
    );
    this.count(cart);
    this.inserted.push(...write.inserted);
    for (const c of write.changed) this.changed.set(c.id, mergedChange(this.changed.get(c.id), c));
    this.events.push(...write.events);
    this.idempotency.push(...write.idempotency);
    for (const [id, r] of d.reservations) this.changes.set(id, r);
    const lookup = (id: string) => this.changes.get(id) ?? this.first.lookup(id);
    this.current = { sku: this.first.sku, ...d.after, lookup };
  }

  remember(record: IdempotencyRecord, cart: number): void {
    this.count(cart);
    this.idempotency.push(record);
  }

  private count(cart: number): void {
    if (cart === this.lastCart) return;
    this.carts++;
    this.lastCart = cart;
  }

  write(atMs: number): BatchWrite | null {
    if (this.events.length === 0 && this.idempotency.length === 0) return null;
    const before = this.first.counters;
    const counters = this.current.counters;
    assert(counters.version === before.version + this.events.length, 'one version per event');
    assertCounters(counters, 'decided');
    for (const r of this.inserted) assert(!this.changed.has(r.id), 'a reservation is not changed in its own batch');
    return {
      sku: this.first.sku,
      versionBefore: before.version,
      hashBefore: this.first.lastHash,
      counters,
      atMs,
      inserted: this.inserted,
      changed: [...this.changed.values()],
      events: this.events,
      idempotency: this.idempotency,
    };
  }
}

/**
 * The answer to a keyed operation whose key was used before: the stored outcome again when it asks
 * for the same thing, idempotency_key_reused when it asks for something else.
 */
export function replayOrReused(prior: Pick<IdempotencyRecord, 'fingerprint' | 'outcome'>, fingerprint: string) {
  const result: CommandResult =
    prior.fingerprint === fingerprint
      ? { type: 'done', outcome: prior.outcome, replayed: true }
      : { type: 'failed', code: 'idempotency_key_reused', reason: `key was used for ${prior.fingerprint}` };
  return result;
}
