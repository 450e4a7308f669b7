import { BulkAdjustments, type BulkAdjustmentsCall } from './bulk-adjustments.ts';
import { BulkProducts, type BulkProductsCall } from './bulk-products.ts';
import { Carts } from './cart.ts';
import type { CartOp } from './decide-cart.ts';
import type { Clock } from './clock.ts';
import { assert, StorageError } from './errors.ts';
import { chainEvents, genesisHash } from './event-hash.ts';
import { productCreatedEvent } from './decide.ts';
import { createFingerprintOf } from './fingerprint.ts';
import { cartBatchesInFlightMaxDefault, conflictRetriesMax, shardCount } from './limits.ts';
import type { EngineObserver } from './observer.ts';
import { ProductActor, type ActorSettings } from './product-actor.ts';
import {
  createdOutcome,
  outcomeForExisting,
  productView,
  rememberWrite,
  type ProductCreation,
} from './product-creation.ts';
import type { Store } from './store.ts';
import type { Command, CommandResult, EventDraft, InventoryView, ProductState } from './types.ts';
import { inventoryView } from './views.ts';

export interface RegistrySettings extends ActorSettings {
  readonly liveActorsPerShardMax: number;
  readonly actorIdleMs: number;
  /** Batches of carts in flight at once in one hold of the cart lane (cartBatchesInFlightMaxDefault). */
  readonly cartBatchesInFlightMax?: number;
}

/** A create as asked for (POST /products). */
interface WantedProduct {
  readonly sku: string;
  readonly name: string;
  readonly stock: number;
  readonly requestId: string;
  readonly key: string | null;
  readonly fingerprint: string;
}

export interface ProductSnapshot {
  readonly sku: string;
  readonly name: string;
  readonly createdAtMs: number;
  readonly inventory: InventoryView;
}

export interface ActorSummary {
  readonly sku: string;
  readonly queueDepth: number;
  readonly commands: number;
  readonly batches: number;
  readonly latencyMsP99: number;
  readonly lastActivityMs: number;
}

function shardOf(sku: string): number {
  // FNV-1a: cheap and stable, so a SKU always lands in the same shard.
  let h = 0x811c9dc5;
  for (let i = 0; i < sku.length; i++) {
    h ^= sku.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shardCount;
}

function snapshotOf(state: ProductState): ProductSnapshot {
  return {
    sku: state.sku,
    name: state.name,
    createdAtMs: state.createdAtMs,
    inventory: inventoryView(state.sku, state.counters, state.active.size),
  };
}

/**
 * Maps each SKU to its one actor. `hash(sku) mod shards` picks a shard; a shard keeps a bounded
 * map of live actors in activation order (use does not reorder it: that would cost a delete and
 * an insert on every command), activates actors on first use and passivates idle ones. To make
 * room, a full shard passivates its idle actor activated longest ago; a full shard with no idle
 * actor refuses new products with `overloaded`.
 */
export class Registry {
  private readonly shards: Map<string, ProductActor>[] = Array.from(
    { length: shardCount },
    () => new Map<string, ProductActor>(),
  );
  /**
   * Which product owns an active reservation, for routing purchase and cancel by id without a
   * query. A reservation's SKU never changes, so an entry is never wrong, only possibly absent.
   */
  private readonly reservationSku = new Map<string, string>();

  private readonly carts: Carts;
  private readonly bulkProducts: BulkProducts;
  private readonly bulkAdjustments: BulkAdjustments;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly settings: RegistrySettings,
    private readonly observer: EngineObserver = {},
  ) {
    this.carts = new Carts({
      store,
      clock,
      observer,
      actorFor: (sku) => this.actorFor(sku),
      batchesInFlightMax: settings.cartBatchesInFlightMax ?? cartBatchesInFlightMaxDefault,
    });
    this.bulkProducts = new BulkProducts({ store, clock, observer });
    this.bulkAdjustments = new BulkAdjustments({
      store,
      clock,
      observer,
      actorFor: (sku) => this.actorFor(sku),
      execute: (sku, command) => this.execute(sku, command),
    });
  }

  get liveActors(): number {
    let n = 0;
    for (const shard of this.shards) n += shard.size;
    return n;
  }

  /** Submits a command to the product's actor. */
  async execute(sku: string, command: Command): Promise<CommandResult> {
    const actor = this.actorFor(sku);
    if (actor === null) {
      const reason = `all ${this.settings.liveActorsPerShardMax} actors of the shard of ${sku} are busy`;
      return this.settleEarly(sku, command, { type: 'failed', code: 'overloaded', reason });
    }
    const result = await actor.submit(command);
    // An actor for a product that does not exist holds nothing worth keeping: release it now,
    // so requests for random SKUs cannot fill the shard.
    if (result.type === 'failed' && result.code === 'product_not_found' && actor.idle) {
      this.passivate(this.shards[shardOf(sku)]!, actor);
    }
    return result;
  }

  /** A new reservation of several products, all or nothing. */
  executeCart(op: Extract<CartOp, { type: 'reserve' }>): Promise<CommandResult> {
    return this.carts.execute(op);
  }

  /**
   * An operation on an existing reservation. One line: its product's actor decides its command in a
   * batch like any other. Several: the cart lane decides all lines at once, batched with other carts.
   */
  async executeReservationOp(op: Exclude<CartOp, { type: 'reserve' }>): Promise<CommandResult> {
    let skus: readonly string[];
    const known = this.reservationSku.get(op.reservationId);
    try {
      skus = known !== undefined ? [known] : await this.store.findReservationSkus(op.reservationId);
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      return { type: 'failed', code: 'storage_unavailable', reason: error.message };
    }
    const [sku] = skus;
    if (sku === undefined)
      return { type: 'failed', code: 'reservation_not_found', reason: `no reservation ${op.reservationId}` };
    if (skus.length > 1) return this.carts.execute(op, skus);
    const command = oneLineCommand(op, sku);
    return command.type === 'failed' ? command : this.execute(sku, command);
  }

  /** Creates products in bulk (POST /products/bulk): each item as POST /products would. */
  importProducts(call: BulkProductsCall): Promise<CommandResult> {
    return this.bulkProducts.run(call);
  }

  /** Stock adjustments in bulk (POST /stock-adjustments/bulk): one by one, or all or nothing. */
  adjustInBulk(call: BulkAdjustmentsCall): Promise<CommandResult> {
    return this.bulkAdjustments.run(call);
  }

  /** The product as its actor committed it; null when it does not exist. */
  async product(sku: string): Promise<ProductSnapshot | null> {
    const actor = this.actorFor(sku);
    if (actor === null) {
      const state = await this.store.loadProduct(sku);
      return state === null ? null : snapshotOf(state);
    }
    return actor.read(snapshotOf);
  }

  /**
   * Creates a product (POST /products), in the product actor's turn so that a create never
   * interleaves with a batch of the same SKU, nor with another create of it on this instance.
   * With an Idempotency-Key the answer is remembered under (sku, key) in the same transaction as
   * what it did, and a later call with that key replays it (or is idempotency_key_reused).
   */
  async createProduct(
    sku: string,
    name: string,
    stock: number,
    requestId: string,
    idempotencyKey: string | null = null,
  ): Promise<ProductCreation> {
    const actor = this.actorFor(sku);
    const fingerprint = createFingerprintOf(name, stock);
    const wanted: WantedProduct = { sku, name, stock, requestId, key: idempotencyKey, fingerprint };
    if (actor === null) return this.create(wanted);
    return actor.exclusive(async (adopt) => {
      const creation = await this.create(wanted);
      // The store read the product back after its statement: a new product starts warm.
      adopt(creation.product);
      return creation;
    });
  }

  private async create(wanted: WantedProduct): Promise<ProductCreation> {
    const { sku, name, stock, requestId, key, fingerprint } = wanted;
    const nowMs = this.clock.nowMs();
    const outcome = createdOutcome(sku, name, stock, nowMs);
    // The key is part of the event, so the hash chain covers which request created the product.
    const draft: EventDraft = { ...productCreatedEvent(stock, requestId, nowMs), idempotencyKey: key };
    const [event] = chainEvents(genesisHash, sku, [draft]);
    const idempotency = key === null ? null : { key, fingerprint, outcome };
    const stored = await this.store.createProduct({ sku, name, stock, nowMs, event: event!, idempotency });
    if (stored.type === 'created') {
      // What a replay renders was fixed before the insert: the row must say the same.
      assert(stored.product.name === name, `product ${sku} reads back with the name it was created with`);
      assert(stored.product.initialStock === stock, `product ${sku} reads back with the stock it was created with`);
      const createdAt = productView(stored.product).createdAt;
      assert(createdAt === outcome.product.createdAt, `product ${sku} reads back with the time it was created at`);
      return { ...stored, result: { type: 'done', outcome, replayed: false } };
    }
    if (key === null) {
      const same = outcomeForExisting(stored.product, name, stock);
      return { ...stored, result: { type: 'done', outcome: same, replayed: false } };
    }
    return this.rememberOnExisting(stored.product, wanted, key, nowMs);
  }

  /**
   * A keyed create that found its product: replays what the key answered before (the 201 of the
   * create that inserted it, say), refuses a key used for something else, or remembers this
   * answer - exactly as a batch remembers a command's outcome, guarded by the product's version.
   */
  private async rememberOnExisting(
    found: ProductState,
    wanted: WantedProduct,
    key: string,
    nowMs: number,
  ): Promise<ProductCreation> {
    const { name, stock, fingerprint } = wanted;
    let product = found;
    for (let attempt = 0; ; attempt++) {
      const outcome = outcomeForExisting(product, name, stock);
      const committed = await this.store.commitBatch(rememberWrite(product, { key, fingerprint, outcome }, nowMs));
      switch (committed.type) {
        case 'committed':
          return { type: 'exists', product, result: { type: 'done', outcome, replayed: false } };
        case 'known': {
          const prior = committed.records.find((r) => r.key === key);
          assert(prior !== undefined, `a known key of ${product.sku} comes back with its record`);
          const result: CommandResult =
            prior.fingerprint === fingerprint
              ? { type: 'done', outcome: prior.outcome, replayed: true }
              : { type: 'failed', code: 'idempotency_key_reused', reason: `key was used for ${prior.fingerprint}` };
          return { type: 'exists', product, result };
        }
        case 'conflict': {
          // Another instance wrote to the product since it was read: the answer must show that.
          this.observer.versionConflict?.(product.sku);
          if (attempt >= conflictRetriesMax) {
            const reason = `${attempt + 1} attempts refused in a row`;
            return { type: 'exists', product, result: { type: 'failed', code: 'storage_unavailable', reason } };
          }
          const reloaded = await this.store.loadProduct(product.sku);
          assert(reloaded !== null, `product ${product.sku} still exists`);
          product = reloaded;
          break;
        }
        default: {
          const unreachable: never = committed;
          return unreachable;
        }
      }
    }
  }

  /** Per-actor figures, busiest (deepest queue, then most commands) first. */
  actorSummaries(limit: number): ActorSummary[] {
    const all: ProductActor[] = [];
    for (const shard of this.shards) all.push(...shard.values());
    all.sort((a, b) => b.queueDepth - a.queueDepth || b.commandsTotal - a.commandsTotal);
    return all.slice(0, limit).map((a) => ({
      sku: a.sku,
      queueDepth: a.queueDepth,
      commands: a.commandsTotal,
      batches: a.batchesTotal,
      latencyMsP99: a.latency.quantileMs(0.99),
      lastActivityMs: a.lastActivityMs,
    }));
  }

  queueDepthTotal(): number {
    let n = 0;
    for (const shard of this.shards) for (const a of shard.values()) n += a.queueDepth;
    return n;
  }

  /** Releases actors idle for longer than the configured time. */
  passivateIdle(): number {
    const cutoffMs = this.clock.nowMs() - this.settings.actorIdleMs;
    let n = 0;
    for (const shard of this.shards) {
      for (const actor of shard.values()) {
        if (actor.idle && actor.lastActivityMs <= cutoffMs) {
          this.passivate(shard, actor);
          n++;
        }
      }
    }
    return n;
  }

  /** Waits until every actor has finished what it was given. */
  async drained(): Promise<void> {
    const all: Promise<void>[] = [];
    for (const shard of this.shards) for (const a of shard.values()) all.push(a.drained());
    await Promise.all(all);
  }

  private actorFor(sku: string): ProductActor | null {
    const shard = this.shards[shardOf(sku)]!;
    const existing = shard.get(sku);
    // No re-ordering on every command: eviction looks for an idle actor, oldest activation first.
    if (existing !== undefined) return existing;
    if (shard.size >= this.settings.liveActorsPerShardMax && !this.evictOne(shard)) return null;
    const actor = new ProductActor(sku, {
      store: this.store,
      clock: this.clock,
      settings: this.settings,
      observer: this.observer,
      onReservationsChanged: (owner, added, removed) => {
        for (const id of added) this.reservationSku.set(id, owner);
        for (const id of removed) this.reservationSku.delete(id);
      },
    });
    shard.set(sku, actor);
    this.observer.actorActivated?.(sku);
    return actor;
  }

  private evictOne(shard: Map<string, ProductActor>): boolean {
    for (const actor of shard.values()) {
      if (actor.idle) {
        this.passivate(shard, actor);
        return true;
      }
    }
    return false;
  }

  private passivate(shard: Map<string, ProductActor>, actor: ProductActor): void {
    for (const id of actor.activeReservationIds()) this.reservationSku.delete(id);
    shard.delete(actor.sku);
    this.observer.actorPassivated?.(actor.sku);
  }

  /** Ends a command that never reached an actor (sku '' when its product is not known). */
  private settleEarly(sku: string, command: Command, result: CommandResult): CommandResult {
    this.observer.commandCompleted?.(sku, command, result, 0);
    return result;
  }
}

/** The one line's command of an operation on a one-line reservation of `sku`. */
function oneLineCommand(
  op: Exclude<CartOp, { type: 'reserve' }>,
  sku: string,
): Command | Extract<CommandResult, { type: 'failed' }> {
  const id = op.reservationId;
  switch (op.type) {
    case 'purchase': {
      const other = op.lines?.find((l) => l.sku !== sku);
      if (other !== undefined)
        return { type: 'failed', code: 'validation_failed', reason: `${other.sku} is not a line of reservation ${id}` };
      const quantity = op.lines?.[0]?.quantity;
      return {
        type: 'purchase',
        reservationId: id,
        idempotencyKey: op.idempotencyKey,
        requestId: op.requestId,
        ...(quantity === undefined ? {} : { quantity }),
      };
    }
    case 'cancel':
      return { type: 'cancel', reservationId: id, idempotencyKey: op.idempotencyKey, requestId: op.requestId };
    case 'extend':
      return {
        type: 'extend',
        reservationId: id,
        ttlSeconds: op.ttlSeconds,
        idempotencyKey: op.idempotencyKey,
        requestId: op.requestId,
      };
    case 'expire':
      return { type: 'expire', reservationId: id };
  }
}
