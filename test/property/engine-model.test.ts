import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stockMax } from '../../src/engine/limits.ts';
import type {
  Command,
  CommandResult,
  FailureCode,
  Outcome,
  RejectionCode,
  ReservationStatus,
  ReservationView,
} from '../../src/engine/types.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import {
  Advance,
  AdvanceToExpiry,
  ModelStep,
  ModelWorld,
  Passivate,
  propertySettings,
  Restart,
} from '../support/model-world.ts';
import { reservationOp } from '../support/reservation-op.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';

// Model-based test of the whole engine (registry, actors, decide, PgStore, sweeper) against a real
// PostgreSQL: random sequences of commands run both on the engine and on a model a few lines long,
// and after every step the two must agree and the database must satisfy G1-G4 and G7.
//
// The harness (two instances, the shared clock, the steps every model takes) is
// test/support/model-world.ts; PROPERTY_RUNS, PROPERTY_SEED and PROPERTY_PATH as it says.

const settings = propertySettings(40);
const commandsMax = 40;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

// ---------------------------------------------------------------------------------------------
// The model

type Letter = 'A' | 'B' | 'C';

interface ModelProduct {
  readonly sku: string;
  readonly stock: number;
  total: number;
  reserved: number;
  purchased: number;
  version: number;
}

interface ModelReservation {
  readonly id: string;
  readonly sku: string;
  readonly quantity: number;
  status: ReservationStatus;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  finishedAtMs: number | null;
}

/** A keyed command the engine answered, with the answer a retry must get again. */
interface Remembered {
  readonly sku: string;
  readonly command: Exclude<Command, { type: 'expire' }>;
  readonly outcome: Outcome;
}

interface Model {
  nowMs: number;
  readonly products: Map<string, ModelProduct>;
  readonly reservations: ModelReservation[];
  /** By `${sku} ${key}`: keys are scoped to a product. */
  readonly records: Map<string, Remembered>;
  keySeq: number;
}

/** What the engine must answer. A fresh rejection is compared by code (its detail is prose). */
type Expected =
  | { readonly type: 'failed'; readonly code: FailureCode }
  | { readonly type: 'done'; readonly replayed: boolean; readonly outcome: Outcome };

const recordKey = (sku: string, key: string) => `${sku} ${key}`;
const iso = (ms: number) => new Date(ms).toISOString();
const unknownReservationId = '00000000-0000-4000-8000-000000000000';

function lineOf(r: ModelReservation): ReservationView['lines'][number] {
  return r.status === 'purchased'
    ? { sku: r.sku, quantity: r.quantity, purchasedQuantity: r.quantity }
    : { sku: r.sku, quantity: r.quantity };
}

function viewOf(r: ModelReservation): ReservationView {
  const view: ReservationView = {
    id: r.id,
    sku: r.sku,
    quantity: r.quantity,
    lines: [lineOf(r)],
    status: r.status,
    createdAt: iso(r.createdAtMs),
    expiresAt: iso(r.expiresAtMs),
  };
  if (r.status === 'purchased') view.purchasedAt = iso(r.finishedAtMs!);
  if (r.status === 'cancelled') view.cancelledAt = iso(r.finishedAtMs!);
  if (r.status === 'expired') view.expiredAt = iso(r.finishedAtMs!);
  return view;
}

function rejected(code: RejectionCode): Outcome {
  return { kind: 'rejected', code, detail: '' };
}

/** Same operation and payload: what "the same request" means under one Idempotency-Key. */
function samePayload(a: Command, b: Command): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'reserve' && b.type === 'reserve') return a.quantity === b.quantity && a.ttlSeconds === b.ttlSeconds;
  if (a.type === 'adjust' && b.type === 'adjust') return a.delta === b.delta && a.reason === b.reason;
  return 'reservationId' in a && 'reservationId' in b && a.reservationId === b.reservationId;
}

function activeCount(m: Model, sku: string): number {
  return m.reservations.filter((r) => r.sku === sku && r.status === 'active').length;
}

/** The model's whole semantics of a command on a product: predicts the answer and applies it. */
function modelExecute(m: Model, sku: string, command: Exclude<Command, { type: 'expire' }>): Expected {
  const p = m.products.get(sku);
  if (p === undefined) return { type: 'failed', code: 'product_not_found' };
  const key = command.idempotencyKey;
  if (key !== null) {
    const prior = m.records.get(recordKey(sku, key));
    if (prior !== undefined) {
      return samePayload(prior.command, command)
        ? { type: 'done', replayed: true, outcome: prior.outcome }
        : { type: 'failed', code: 'idempotency_key_reused' };
    }
  }
  const outcome = modelDecide(m, p, command);
  if (key !== null) m.records.set(recordKey(sku, key), { sku, command, outcome });
  return { type: 'done', replayed: false, outcome };
}

function modelDecide(m: Model, p: ModelProduct, command: Exclude<Command, { type: 'expire' }>): Outcome {
  const now = m.nowMs;
  switch (command.type) {
    case 'reserve': {
      p.version++;
      if (p.total - p.reserved - p.purchased < command.quantity) return rejected('insufficient_stock');
      const r: ModelReservation = {
        id: command.reservationId,
        sku: p.sku,
        quantity: command.quantity,
        status: 'active',
        createdAtMs: now,
        expiresAtMs: now + command.ttlSeconds * 1000,
        finishedAtMs: null,
      };
      m.reservations.push(r);
      p.reserved += r.quantity;
      return { kind: 'reservation', created: true, reservation: viewOf(r) };
    }
    case 'adjust': {
      p.version++;
      const totalAfter = p.total + command.delta;
      if (totalAfter < p.reserved + p.purchased) return rejected('insufficient_stock');
      if (totalAfter > stockMax) return rejected('stock_limit_exceeded');
      p.total = totalAfter;
      const inventory = {
        sku: p.sku,
        total: p.total,
        reserved: p.reserved,
        purchased: p.purchased,
        available: p.total - p.reserved - p.purchased,
        activeReservations: activeCount(m, p.sku),
        version: p.version,
      };
      return { kind: 'inventory', inventory };
    }
    case 'purchase':
    case 'cancel': {
      const r = m.reservations.find((x) => x.id === command.reservationId)!;
      const target: ReservationStatus = command.type === 'purchase' ? 'purchased' : 'cancelled';
      // Purchase and cancel are idempotent by the lifecycle: the same answer, no effect.
      if (r.status === target) return { kind: 'reservation', created: false, reservation: viewOf(r) };
      if (r.status !== 'active') {
        p.version++;
        return rejected(`reservation_${r.status}` as RejectionCode);
      }
      if (now >= r.expiresAtMs) {
        // docs/API.md: past expiresAt it is expired in that moment (one event) and refused (another).
        finishReservation(p, r, 'expired', now);
        p.version++;
        return rejected('reservation_expired');
      }
      finishReservation(p, r, target, now);
      return { kind: 'reservation', created: false, reservation: viewOf(r) };
    }
    case 'extend':
    case 'refuse':
      throw new Error(`the model does not generate ${command.type}`);
    default: {
      const unreachable: never = command;
      return unreachable;
    }
  }
}

function finishReservation(p: ModelProduct, r: ModelReservation, to: ReservationStatus, now: number): void {
  r.status = to;
  r.finishedAtMs = now;
  p.reserved -= r.quantity;
  if (to === 'purchased') p.purchased += r.quantity;
  p.version++;
}

// ---------------------------------------------------------------------------------------------
// The real system

/**
 * Two engine instances over the file's database. Each run lives in its own week, earlier than
 * every run before it (see ModelWorld).
 */
class World extends ModelWorld<Model> {
  constructor() {
    super(db.url, 'm', 7 * 24 * 3600 * 1000);
  }

  verify(m: Model): Promise<void> {
    return checkWorld(m, this);
  }
}

function expectResult(actual: CommandResult, expected: Expected, what: string): void {
  if (expected.type === 'failed') {
    expect(actual, what).toMatchObject({ type: 'failed', code: expected.code });
    return;
  }
  expect(actual.type, `${what}: ${JSON.stringify(actual)}`).toBe('done');
  if (actual.type !== 'done') return;
  expect(actual.replayed, `${what}: replayed`).toBe(expected.replayed);
  if (expected.outcome.kind === 'rejected' && !expected.replayed) {
    expect(actual.outcome, what).toMatchObject({ kind: 'rejected', code: expected.outcome.code });
  } else {
    // A replay is the stored answer exactly, rejection prose included.
    expect(actual.outcome, what).toEqual(expected.outcome);
  }
}

/** After a fresh keyed command: remember what the engine really answered, for its replays. */
function rememberReal(
  m: Model,
  sku: string,
  command: Exclude<Command, { type: 'expire' }>,
  actual: CommandResult,
): void {
  if (command.idempotencyKey === null || actual.type !== 'done' || actual.replayed) return;
  m.records.set(recordKey(sku, command.idempotencyKey), { sku, command, outcome: actual.outcome });
}

/** The checks after every step: the database is consistent, and engine, database and model agree. */
async function checkWorld(m: Model, w: World): Promise<void> {
  const skus = [...m.products.keys()];
  if (skus.length === 0) return;
  expect(await databaseViolations(db.sql, skus)).toEqual([]);

  const { rows: products } = await db.sql.query(
    `select sku, total::float8, reserved::float8, purchased::float8, version::float8 from products where sku = any($1::text[]) order by sku`,
    [skus],
  );
  const expected = [...m.products.values()]
    .sort((a, b) => a.sku.localeCompare(b.sku))
    .map(({ sku, total, reserved, purchased, version }) => ({ sku, total, reserved, purchased, version }));
  expect(products, 'product rows equal the model').toEqual(expected);

  const { rows: reservations } = await db.sql.query(
    `select id::text, status, (extract(epoch from finished_at) * 1000)::float8 as finished_at_ms from reservations where sku = any($1::text[]) order by id`,
    [skus],
  );
  const expectedReservations = m.reservations
    .map((r) => ({ id: r.id, status: r.status, finished_at_ms: r.finishedAtMs }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  expect(reservations, 'reservation rows equal the model').toEqual(expectedReservations);

  const {
    rows: [records],
  } = await db.sql.query(`select count(*)::int as n from idempotency_records where sku = any($1::text[])`, [skus]);
  expect(records.n, 'one idempotency record per answered key').toBe(m.records.size);

  // Reads through either instance are real-time (the actor checks the committed version).
  for (const [i, instance] of w.instances.entries()) {
    for (const p of m.products.values()) {
      const read = await instance.registry.product(p.sku);
      expect(read?.inventory, `inventory of ${p.sku} read through instance ${i}`).toEqual({
        sku: p.sku,
        total: p.total,
        reserved: p.reserved,
        purchased: p.purchased,
        available: p.total - p.reserved - p.purchased,
        activeReservations: activeCount(m, p.sku),
        version: p.version,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

abstract class Step extends ModelStep<Model, World> {}

class CreateProduct extends Step {
  constructor(
    readonly letter: Letter,
    readonly stock: number,
  ) {
    super();
  }
  describe() {
    return `create ${this.letter} stock=${this.stock}`;
  }
  async apply(m: Model, w: World) {
    const sku = w.sku(this.letter);
    const result = await w.instances[0]!.registry.createProduct(sku, sku, this.stock, 'req');
    const existing = m.products.get(sku);
    if (existing === undefined) {
      m.products.set(sku, { sku, stock: this.stock, total: this.stock, reserved: 0, purchased: 0, version: 1 });
    }
    const p = m.products.get(sku)!;
    expect(result.type, this.describe()).toBe(existing === undefined ? 'created' : 'exists');
    const { total, reserved, purchased, version } = result.product.counters;
    expect({ total, reserved, purchased, version }).toEqual({
      total: p.total,
      reserved: p.reserved,
      purchased: p.purchased,
      version: p.version,
    });
  }
}

class Reserve extends Step {
  constructor(
    readonly letter: Letter,
    readonly quantity: number,
    readonly ttlSeconds: number,
    readonly via: number,
  ) {
    super();
  }
  describe() {
    return `reserve ${this.letter} q=${this.quantity} ttl=${this.ttlSeconds}s via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    const sku = w.sku(this.letter);
    const key = `k${++m.keySeq}`;
    const command = {
      type: 'reserve',
      reservationId: randomUUID(),
      quantity: this.quantity,
      ttlSeconds: this.ttlSeconds,
      idempotencyKey: key,
      requestId: 'req',
    } as const;
    this.note = key;
    const expected = modelExecute(m, sku, command);
    const actual = await w.instances[this.via]!.registry.execute(sku, command);
    expectResult(actual, expected, this.toString());
    rememberReal(m, sku, command, actual);
  }
}

class Finish extends Step {
  constructor(
    readonly action: 'purchase' | 'cancel',
    readonly pick: number,
    readonly keyed: boolean,
    readonly via: number,
  ) {
    super();
  }
  describe() {
    return `${this.action} reservation#${this.pick}${this.keyed ? ' keyed' : ''} via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    // One pick in eight (and any pick before the first reservation) names one that does not exist.
    const r = this.pick % 8 === 7 ? undefined : m.reservations[this.pick % Math.max(m.reservations.length, 1)];
    const id = r?.id ?? unknownReservationId;
    const key = this.keyed ? `k${++m.keySeq}` : null;
    const command = { type: this.action, reservationId: id, idempotencyKey: key, requestId: 'req' } as const;
    this.note = `${id.slice(0, 8)}${key === null ? '' : ` ${key}`}`;
    const expected: Expected =
      r === undefined ? { type: 'failed', code: 'reservation_not_found' } : modelExecute(m, r.sku, command);
    const actual = await w.instances[this.via]!.registry.executeReservationOp(reservationOp(command));
    expectResult(actual, expected, this.toString());
    if (r !== undefined) rememberReal(m, r.sku, command, actual);
  }
}

class Adjust extends Step {
  constructor(
    readonly letter: Letter,
    readonly delta: number,
    readonly via: number,
  ) {
    super();
  }
  describe() {
    return `adjust ${this.letter} delta=${this.delta} via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    const sku = w.sku(this.letter);
    const key = `k${++m.keySeq}`;
    const command = {
      type: 'adjust',
      delta: this.delta,
      reason: 'count',
      idempotencyKey: key,
      requestId: 'req',
    } as const;
    this.note = key;
    const expected = modelExecute(m, sku, command);
    const actual = await w.instances[this.via]!.registry.execute(sku, command);
    expectResult(actual, expected, this.toString());
    rememberReal(m, sku, command, actual);
  }
}

function rememberedAt(m: Readonly<Model>, pick: number): Remembered | undefined {
  const all = [...m.records.values()];
  return all[pick % Math.max(all.length, 1)];
}

async function send(
  w: World,
  via: number,
  sku: string,
  command: Exclude<Command, { type: 'expire' }>,
): Promise<CommandResult> {
  const registry = w.instances[via]!.registry;
  return command.type === 'purchase' || command.type === 'cancel'
    ? registry.executeReservationOp(reservationOp(command))
    : registry.execute(sku, command);
}

/** G2: the same request with the same key again - the stored answer, and nothing changes. */
class Replay extends Step {
  constructor(
    readonly pick: number,
    readonly via: number,
  ) {
    super();
  }
  override check(m: Readonly<Model>) {
    return m.records.size > 0;
  }
  describe() {
    return `replay remembered#${this.pick} via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    const prior = rememberedAt(m, this.pick)!;
    // Like the API, a retried reserve comes with a fresh reservation id; the key decides.
    const command =
      prior.command.type === 'reserve' ? { ...prior.command, reservationId: randomUUID() } : prior.command;
    this.note = `${command.type} ${command.idempotencyKey}`;
    const expected = modelExecute(m, prior.sku, command);
    expect(expected).toEqual({ type: 'done', replayed: true, outcome: prior.outcome });
    expectResult(await send(w, this.via, prior.sku, command), expected, this.toString());
  }
}

/** The same key with a different payload: idempotency_key_reused, and nothing changes. */
class ReuseKey extends Step {
  constructor(
    readonly pick: number,
    readonly via: number,
  ) {
    super();
  }
  override check(m: Readonly<Model>) {
    return m.records.size > 0;
  }
  describe() {
    return `reuse key of remembered#${this.pick} via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    const prior = rememberedAt(m, this.pick)!;
    const c = prior.command;
    const command: Exclude<Command, { type: 'expire' }> =
      c.type === 'reserve'
        ? { ...c, reservationId: randomUUID(), quantity: c.quantity + 1 }
        : c.type === 'adjust'
          ? { ...c, delta: c.delta === -1 ? 1 : c.delta + 1 }
          : { ...c, type: c.type === 'purchase' ? 'cancel' : 'purchase' };
    this.note = `${command.type} ${command.idempotencyKey}`;
    const expected = modelExecute(m, prior.sku, command);
    expect(expected).toEqual({ type: 'failed', code: 'idempotency_key_reused' });
    expectResult(await send(w, this.via, prior.sku, command), expected, this.toString());
  }
}

/** Keys are scoped to a product: a key answered on one product is a new key on another. */
class KeyOnOtherProduct extends Step {
  constructor(
    readonly pick: number,
    readonly letter: Letter,
    readonly quantity: number,
    readonly via: number,
  ) {
    super();
  }
  override check(m: Readonly<Model>) {
    return m.records.size > 0;
  }
  describe() {
    return `reserve ${this.letter} q=${this.quantity} with the key of remembered#${this.pick} via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    const prior = rememberedAt(m, this.pick)!;
    const letters: Letter[] = ['A', 'B', 'C'];
    const sku =
      w.sku(this.letter) === prior.sku ? w.sku(letters[(letters.indexOf(this.letter) + 1) % 3]!) : w.sku(this.letter);
    const command = {
      type: 'reserve',
      reservationId: randomUUID(),
      quantity: this.quantity,
      ttlSeconds: 60,
      idempotencyKey: prior.command.idempotencyKey!,
      requestId: 'req',
    } as const;
    this.note = `${command.idempotencyKey} on ${sku.slice(-1)}`;
    const expected = modelExecute(m, sku, command);
    const actual = await w.instances[this.via]!.registry.execute(sku, command);
    expectResult(actual, expected, this.toString());
    rememberReal(m, sku, command, actual);
  }
}

/** G6: one sweep expires exactly the active reservations whose expiresAt has passed. */
class Sweep extends Step {
  describe() {
    return 'sweep';
  }
  async apply(m: Model, w: World) {
    const due = m.reservations.filter((r) => r.status === 'active' && r.expiresAtMs <= m.nowMs);
    for (const r of due) finishReservation(m.products.get(r.sku)!, r, 'expired', m.nowMs);
    const report = await w.instances[0]!.sweeper.sweepOnce();
    expect(report).toEqual({ due: due.length, expired: due.length, failed: 0 });
  }
}

const letter = fc.constantFrom<Letter>('A', 'B', 'C');
const via = fc.constantFrom(0, 1);
const pick = fc.nat(64);
const commandArbitraries = [
  fc.tuple(letter, fc.integer({ min: 0, max: 20 })).map(([l, stock]) => new CreateProduct(l, stock)),
  fc
    .tuple(letter, fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 300 }), via)
    .map(([l, q, ttl, v]) => new Reserve(l, q, ttl, v)),
  fc
    .tuple(letter, fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 300 }), via)
    .map(([l, q, ttl, v]) => new Reserve(l, q, ttl, v)),
  fc
    .tuple(fc.constantFrom<'purchase' | 'cancel'>('purchase', 'cancel'), pick, fc.boolean(), via)
    .map(([a, p, k, v]) => new Finish(a, p, k, v)),
  fc
    .tuple(fc.constantFrom<'purchase' | 'cancel'>('purchase', 'cancel'), pick, fc.boolean(), via)
    .map(([a, p, k, v]) => new Finish(a, p, k, v)),
  fc
    .tuple(
      letter,
      fc.oneof(
        { weight: 5, arbitrary: fc.integer({ min: -15, max: -1 }) },
        { weight: 5, arbitrary: fc.integer({ min: 1, max: 15 }) },
        { weight: 1, arbitrary: fc.constant(stockMax) },
      ),
      via,
    )
    .map(([l, d, v]) => new Adjust(l, d, v)),
  fc.tuple(pick, via).map(([p, v]) => new Replay(p, v)),
  fc.tuple(pick, via).map(([p, v]) => new ReuseKey(p, v)),
  fc.tuple(pick, letter, fc.integer({ min: 1, max: 4 }), via).map(([p, l, q, v]) => new KeyOnOtherProduct(p, l, q, v)),
  fc.integer({ min: 1, max: 120_000 }).map((ms) => new Advance<Model, World>(ms)),
  fc.tuple(pick, fc.constantFrom<-1 | 0 | 1>(-1, 0, 1)).map(([p, o]) => new AdvanceToExpiry<Model, World>(p, o)),
  fc.constant(null).map(() => new Sweep()),
  via.map((v) => new Restart<Model, World>(v)),
  fc.constant(null).map(() => new Passivate<Model, World>()),
];

/** The stock of A and B, created before the commands run. */
class InitialStocks {
  constructor(
    readonly a: number,
    readonly b: number,
  ) {}
  [fc.toStringMethod](): string {
    return `create A stock=${this.a}, create B stock=${this.b}`;
  }
}
const initialStocks = fc
  .tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }))
  .map(([a, b]) => new InitialStocks(a, b));

describe('engine model', () => {
  it('G1 G2 G3 G4 G6 G7: any sequence of commands, clock moves, sweeps, restarts and a second instance keeps the engine equal to the model and the database consistent', async () => {
    await fc.assert(
      fc.asyncProperty(
        initialStocks,
        fc.commands(commandArbitraries, { maxCommands: commandsMax, size: 'max' }),
        async (stocks, commands) => {
          const world = new World();
          try {
            const model: Model = {
              nowMs: world.clock.nowMs(),
              products: new Map(),
              reservations: [],
              records: new Map(),
              keySeq: 0,
            };
            // A and B exist from the start, so most commands meet a product; C only when created.
            await new CreateProduct('A', stocks.a).run(model, world);
            await new CreateProduct('B', stocks.b).run(model, world);
            await fc.asyncModelRun(() => ({ model, real: world }), commands);
          } finally {
            await world.stop();
          }
        },
      ),
      { ...settings, verbose: 1 },
    );
  }, 600_000);
});
