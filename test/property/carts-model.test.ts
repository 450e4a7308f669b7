import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CartLine, CartOp } from '../../src/engine/decide-cart.ts';
import { idempotencyRetentionMs, reservationLifetimeMaxSeconds } from '../../src/engine/limits.ts';
import type {
  Command,
  CommandResult,
  FailureCode,
  Outcome,
  RejectionCode,
  ReservationStatus,
  ReservationView,
} from '../../src/engine/types.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
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

// Model-based test of carts (reservations of several products) over the whole engine: two engine
// instances on one PostgreSQL, random sequences of carts, one-product reservations, partial and
// whole purchases, cancels, extensions, clock moves with sweeps, restarts and keyed replays, run on
// the engine and on a small model. After every step the two agree on every product's counters and
// every reservation's lines and status, and the database satisfies G1-G4 and G7 (the oracle).
//
// The harness (two instances, the shared clock, the steps every model takes) is
// test/support/model-world.ts; PROPERTY_RUNS, PROPERTY_SEED and PROPERTY_PATH as it says.

const settings = propertySettings(40);
const commandsMax = 40;
const lifetimeMs = reservationLifetimeMaxSeconds * 1000;
const runSpacingMs = 60 * 24 * 3600 * 1000;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

// ---------------------------------------------------------------------------------------------
// The model

/** D exists only in runs of four products: in the others, naming it is an unknown SKU. */
type Letter = 'A' | 'B' | 'C' | 'D';

interface ModelProduct {
  readonly sku: string;
  total: number;
  reserved: number;
  purchased: number;
  version: number;
}

interface ModelLine {
  readonly sku: string;
  readonly quantity: number;
  purchasedQuantity: number | null;
}

interface ModelReservation {
  readonly id: string;
  /** In the order of the request. */
  readonly lines: ModelLine[];
  status: ReservationStatus;
  readonly createdAtMs: number;
  expiresAtMs: number;
  finishedAtMs: number | null;
}

/** A request as a client sends it, by route. */
type Sent =
  | { readonly route: 'cart'; readonly op: Extract<CartOp, { type: 'reserve' }> }
  | { readonly route: 'product'; readonly sku: string; readonly command: Extract<Command, { type: 'reserve' }> }
  | { readonly route: 'reservation'; readonly op: Exclude<CartOp, { type: 'reserve' | 'expire' }> };

/** A keyed request the engine answered, with the answer a retry must get again. */
interface Remembered {
  readonly sent: Sent;
  readonly payload: string;
  readonly outcome: Outcome;
  /** When it was answered: the sweeper drops records older than idempotencyRetentionMs. */
  readonly atMs: number;
}

interface Model {
  nowMs: number;
  readonly products: Map<string, ModelProduct>;
  readonly reservations: ModelReservation[];
  /** By `${scope} ${key}`: the route for a new cart, the reservation (or its one product) after. */
  readonly records: Map<string, Remembered>;
}

type Expected =
  | { readonly type: 'failed'; readonly code: FailureCode; readonly unknownSkus?: readonly string[] }
  | { readonly type: 'done'; readonly replayed: boolean; readonly outcome: Outcome };

const iso = (ms: number) => new Date(ms).toISOString();
const bySku = (a: { sku: string }, b: { sku: string }) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0);

function viewOf(r: ModelReservation): ReservationView {
  const lines = r.lines.map((l) =>
    l.purchasedQuantity === null
      ? { sku: l.sku, quantity: l.quantity }
      : { sku: l.sku, quantity: l.quantity, purchasedQuantity: l.purchasedQuantity },
  );
  const one = r.lines.length === 1 ? { sku: r.lines[0]!.sku, quantity: r.lines[0]!.quantity } : {};
  const view: ReservationView = {
    id: r.id,
    ...one,
    lines,
    status: r.status,
    createdAt: iso(r.createdAtMs),
    expiresAt: iso(r.expiresAtMs),
  };
  if (r.status === 'purchased') view.purchasedAt = iso(r.finishedAtMs!);
  if (r.status === 'cancelled') view.cancelledAt = iso(r.finishedAtMs!);
  if (r.status === 'expired') view.expiredAt = iso(r.finishedAtMs!);
  return view;
}

const reservationOutcome = (r: ModelReservation, created = false): Outcome => ({
  kind: 'reservation',
  created,
  reservation: viewOf(r),
});
const rejected = (code: RejectionCode, lines?: { sku: string; requested: number; available: number }[]): Outcome => ({
  kind: 'rejected',
  code,
  detail: '',
  ...(lines === undefined ? {} : { lines }),
});

/** Where a request's key lives (docs/API.md): null for a reservation that does not exist. */
function scopeOf(m: Model, sent: Sent): string | null {
  if (sent.route === 'cart') return '/reservations';
  if (sent.route === 'product') return sent.sku;
  const r = m.reservations.find((x) => x.id === sent.op.reservationId);
  if (r === undefined) return null;
  return r.lines.length > 1 ? `/reservations/${r.id}` : r.lines[0]!.sku;
}

function keyOf(sent: Sent): string | null {
  return sent.route === 'product' ? sent.command.idempotencyKey : sent.op.idempotencyKey;
}

/** What "the same request" means under one key: the route's operation and body (a new cart's id is the server's). */
function payloadOf(sent: Sent): string {
  switch (sent.route) {
    case 'cart':
      return JSON.stringify(['cart', sent.op.lines, sent.op.ttlSeconds]);
    case 'product':
      return JSON.stringify(['product', sent.command.quantity, sent.command.ttlSeconds]);
    case 'reservation': {
      const { op } = sent;
      const body = op.type === 'purchase' ? op.lines : op.type === 'extend' ? op.ttlSeconds : null;
      return JSON.stringify([op.type, op.reservationId, body]);
    }
  }
}

/** The model's whole semantics of a request: predicts the answer and applies it. */
function modelExecute(m: Model, sent: Sent): Expected {
  const scope = scopeOf(m, sent);
  if (scope === null) return { type: 'failed', code: 'reservation_not_found' };
  const key = keyOf(sent);
  const prior = key === null ? undefined : m.records.get(`${scope} ${key}`);
  if (prior !== undefined) {
    return prior.payload === payloadOf(sent)
      ? { type: 'done', replayed: true, outcome: prior.outcome }
      : { type: 'failed', code: 'idempotency_key_reused' };
  }
  const decided = sent.route === 'reservation' ? modelOperate(m, sent.op) : modelReserve(m, sent);
  if (decided.type === 'done' && key !== null) {
    m.records.set(`${scope} ${key}`, { sent, payload: payloadOf(sent), outcome: decided.outcome, atMs: m.nowMs });
  }
  return decided;
}

function modelReserve(m: Model, sent: Extract<Sent, { route: 'cart' | 'product' }>): Expected {
  const id = sent.route === 'cart' ? sent.op.reservationId : sent.command.reservationId;
  const asked: readonly CartLine[] =
    sent.route === 'cart' ? sent.op.lines : [{ sku: sent.sku, quantity: sent.command.quantity }];
  const ttlSeconds = sent.route === 'cart' ? sent.op.ttlSeconds : sent.command.ttlSeconds;
  const unknownSkus = asked
    .map((l) => l.sku)
    .filter((sku) => !m.products.has(sku))
    .sort();
  if (unknownSkus.length > 0) return { type: 'failed', code: 'product_not_found', unknownSkus };
  const products = asked.map((l) => m.products.get(l.sku)!);
  const short = [...asked].sort(bySku).flatMap((l) => {
    const p = m.products.get(l.sku)!;
    const available = p.total - p.reserved - p.purchased;
    return available < l.quantity ? [{ sku: l.sku, requested: l.quantity, available }] : [];
  });
  for (const p of products) p.version++;
  if (short.length > 0) {
    // Only a cart's refusal lists its short lines.
    const outcome = rejected('insufficient_stock', sent.route === 'cart' ? short : undefined);
    return { type: 'done', replayed: false, outcome };
  }
  asked.forEach((l, i) => (products[i]!.reserved += l.quantity));
  const r: ModelReservation = {
    id,
    lines: asked.map((l) => ({ sku: l.sku, quantity: l.quantity, purchasedQuantity: null })),
    status: 'active',
    createdAtMs: m.nowMs,
    expiresAtMs: m.nowMs + ttlSeconds * 1000,
    finishedAtMs: null,
  };
  m.reservations.push(r);
  return { type: 'done', replayed: false, outcome: reservationOutcome(r, true) };
}

function productsOf(m: Model, r: ModelReservation): ModelProduct[] {
  return r.lines.map((l) => m.products.get(l.sku)!);
}

/** Every product of the reservation records one refusal (all or nothing). */
function refuse(m: Model, r: ModelReservation, code: RejectionCode): Expected {
  for (const p of productsOf(m, r)) p.version++;
  return { type: 'done', replayed: false, outcome: rejected(code) };
}

function finish(m: Model, r: ModelReservation, to: ReservationStatus): void {
  for (const l of r.lines) {
    const p = m.products.get(l.sku)!;
    p.reserved -= l.quantity;
    p.version++;
  }
  r.status = to;
  r.finishedAtMs = m.nowMs;
}

/**
 * A reservation that is no longer active refuses with its status's code; one whose expiresAt has
 * passed is expired in that moment (an `expired` event) and refused (a `rejected` one).
 */
function refuseUnlessActive(m: Model, r: ModelReservation): Expected | null {
  if (r.status !== 'active') return refuse(m, r, `reservation_${r.status}` as RejectionCode);
  if (m.nowMs < r.expiresAtMs) return null;
  finish(m, r, 'expired');
  return refuse(m, r, 'reservation_expired');
}

function modelOperate(m: Model, op: Extract<Sent, { route: 'reservation' }>['op']): Expected {
  const r = m.reservations.find((x) => x.id === op.reservationId)!;
  switch (op.type) {
    case 'purchase':
      return modelPurchase(m, r, op.lines);
    case 'cancel': {
      if (r.status === 'cancelled') return { type: 'done', replayed: false, outcome: reservationOutcome(r) };
      const refused = refuseUnlessActive(m, r);
      if (refused !== null) return refused;
      finish(m, r, 'cancelled');
      return { type: 'done', replayed: false, outcome: reservationOutcome(r) };
    }
    case 'extend': {
      const refused = refuseUnlessActive(m, r);
      if (refused !== null) return refused;
      const capMs = r.createdAtMs + lifetimeMs;
      if (r.expiresAtMs >= capMs) return refuse(m, r, 'reservation_lifetime_exceeded');
      r.expiresAtMs = Math.min(m.nowMs + op.ttlSeconds * 1000, capMs);
      for (const p of productsOf(m, r)) p.version++;
      return { type: 'done', replayed: false, outcome: reservationOutcome(r) };
    }
  }
}

function modelPurchase(m: Model, r: ModelReservation, asked: readonly CartLine[] | null): Expected {
  if (asked !== null && asked.some((a) => !r.lines.some((l) => l.sku === a.sku))) {
    return { type: 'failed', code: 'validation_failed' };
  }
  const bought = r.lines.map((l) =>
    asked === null ? l.quantity : (asked.find((a) => a.sku === l.sku)?.quantity ?? 0),
  );
  if (r.status === 'purchased' && r.lines.every((l, i) => l.purchasedQuantity === bought[i])) {
    return { type: 'done', replayed: false, outcome: reservationOutcome(r) };
  }
  const refused = refuseUnlessActive(m, r);
  if (refused !== null) return refused;
  if (r.lines.some((l, i) => bought[i]! > l.quantity)) return refuse(m, r, 'quantity_exceeds_reservation');
  r.lines.forEach((l, i) => {
    const p = m.products.get(l.sku)!;
    const n = bought[i]!;
    // A `purchased` event for what is bought, a `released` one for what goes back.
    if (n > 0) p.version++;
    if (n < l.quantity) p.version++;
    p.reserved -= l.quantity;
    p.purchased += n;
    l.purchasedQuantity = n;
  });
  r.status = 'purchased';
  r.finishedAtMs = m.nowMs;
  return { type: 'done', replayed: false, outcome: reservationOutcome(r) };
}

// ---------------------------------------------------------------------------------------------
// The real system

/**
 * Two engine instances over the file's database and the clock they share. Each run starts 60 days
 * earlier than the run before it, and its clock moves at most about a day per command (no
 * reservation lives longer), so no sweep of this run finds another run's reservations due. Keys
 * carry the run's prefix, since a new cart's key lives in a scope all runs share.
 */
class World extends ModelWorld<Model> {
  private keySeq = 0;

  constructor() {
    super(db.url, 'c', runSpacingMs);
  }

  verify(m: Model): Promise<void> {
    return checkWorld(m, this);
  }

  key(): string {
    return `${this.prefix}-k${++this.keySeq}`;
  }

  send(via: number, sent: Sent): Promise<CommandResult> {
    const registry = this.instances[via]!.registry;
    switch (sent.route) {
      case 'cart':
        return registry.executeCart(sent.op);
      case 'product':
        return registry.execute(sent.sku, sent.command);
      case 'reservation':
        return registry.executeReservationOp(sent.op);
    }
  }
}

function expectResult(actual: CommandResult, expected: Expected, what: string): void {
  if (expected.type === 'failed') {
    expect(actual, what).toMatchObject(expected);
    return;
  }
  expect(actual.type, `${what}: ${JSON.stringify(actual)}`).toBe('done');
  if (actual.type !== 'done') return;
  expect(actual.replayed, `${what}: replayed`).toBe(expected.replayed);
  if (expected.outcome.kind === 'rejected' && !expected.replayed) {
    // A fresh rejection is compared by code and short lines: its detail is prose.
    const { detail: _, ...wanted } = expected.outcome;
    expect(actual.outcome, what).toMatchObject(wanted);
    expect('lines' in actual.outcome, `${what}: lists short lines`).toBe('lines' in expected.outcome);
  } else {
    // A replay is the stored answer exactly, rejection prose included.
    expect(actual.outcome, what).toEqual(expected.outcome);
  }
}

/** Sends a request through one instance and checks its answer against the model's. */
async function exchange(m: Model, w: World, via: number, sent: Sent, what: string): Promise<void> {
  const expected = modelExecute(m, sent);
  const actual = await w.send(via, sent);
  expectResult(actual, expected, what);
  // A fresh keyed answer: its replays must get what the engine really said (prose included).
  const key = keyOf(sent);
  if (key !== null && actual.type === 'done' && !actual.replayed) {
    const scope = scopeOf(m, sent)!;
    m.records.set(`${scope} ${key}`, { sent, payload: payloadOf(sent), outcome: actual.outcome, atMs: m.nowMs });
  }
}

const activeOn = (m: Model, sku: string) =>
  m.reservations.filter((r) => r.status === 'active' && r.lines.some((l) => l.sku === sku)).length;

/** The checks after every step: the database is consistent, and engine, database and model agree. */
async function checkWorld(m: Model, w: World): Promise<void> {
  const skus = [...m.products.keys()].sort();
  expect(await databaseViolations(db.sql, skus)).toEqual([]);

  const { rows: products } = await db.sql.query(
    `select sku, total::float8, reserved::float8, purchased::float8, version::float8
       from products where sku = any($1::text[]) order by sku`,
    [skus],
  );
  const expected = [...m.products.values()]
    .sort(bySku)
    .map(({ sku, total, reserved, purchased, version }) => ({ sku, total, reserved, purchased, version }));
  expect(products, 'product rows equal the model').toEqual(expected);

  const { rows: lines } = await db.sql.query(
    `select id::text, sku, quantity::int, line::int, lines::int, status, purchased_quantity::int,
            (extract(epoch from expires_at) * 1000)::float8 as expires_at_ms,
            (extract(epoch from finished_at) * 1000)::float8 as finished_at_ms
       from reservations where sku = any($1::text[]) order by id, line`,
    [skus],
  );
  const expectedLines = m.reservations
    .flatMap((r) =>
      r.lines.map((l, i) => ({
        id: r.id,
        sku: l.sku,
        quantity: l.quantity,
        line: i,
        lines: r.lines.length,
        status: r.status,
        purchased_quantity: l.purchasedQuantity,
        expires_at_ms: r.expiresAtMs,
        finished_at_ms: r.finishedAtMs,
      })),
    )
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.line - b.line));
  expect(lines, 'reservation lines equal the model').toEqual(expectedLines);

  const {
    rows: [records],
  } = await db.sql.query(`select count(*)::int as n from idempotency_records where key like $1::text`, [
    `${w.prefix}-%`,
  ]);
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
        activeReservations: activeOn(m, p.sku),
        version: p.version,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

abstract class Step extends ModelStep<Model, World> {}

interface LineAsked {
  readonly letter: Letter;
  readonly quantity: number;
}

class ReserveCart extends Step {
  constructor(
    readonly lines: readonly LineAsked[],
    readonly ttlSeconds: number,
    readonly via: number,
  ) {
    super();
  }
  describe() {
    const lines = this.lines.map((l) => `${l.letter}x${l.quantity}`).join(' ');
    return `cart ${lines} ttl=${this.ttlSeconds}s via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    const key = w.key();
    const lines = this.lines.map((l) => ({ sku: w.sku(l.letter), quantity: l.quantity }));
    const op = {
      type: 'reserve',
      reservationId: randomUUID(),
      lines,
      ttlSeconds: this.ttlSeconds,
      idempotencyKey: key,
      requestId: 'req',
    } as const;
    this.note = `${op.reservationId.slice(0, 8)} ${key.slice(-4)}`;
    await exchange(m, w, this.via, { route: 'cart', op }, this.toString());
  }
}

/** A reservation of one product through its own route, on the products the carts share. */
class ReserveOne extends Step {
  constructor(
    readonly letter: Letter,
    readonly quantity: number,
    readonly ttlSeconds: number,
    readonly via: number,
  ) {
    super();
  }
  describe() {
    return `reserve ${this.letter}x${this.quantity} ttl=${this.ttlSeconds}s via#${this.via}`;
  }
  override check(m: Readonly<Model>) {
    return [...m.products.keys()].some((sku) => sku.endsWith(`-${this.letter}`));
  }
  async apply(m: Model, w: World) {
    const key = w.key();
    const command = {
      type: 'reserve',
      reservationId: randomUUID(),
      quantity: this.quantity,
      ttlSeconds: this.ttlSeconds,
      idempotencyKey: key,
      requestId: 'req',
    } as const;
    this.note = `${command.reservationId.slice(0, 8)} ${key.slice(-4)}`;
    await exchange(m, w, this.via, { route: 'product', sku: w.sku(this.letter), command }, this.toString());
  }
}

/** How a purchase treats one line of the reservation, by the line's place. */
type LineChoice = 'omit' | 'one' | 'whole' | 'over';

/** What a purchase asks: every line whole (no body), or a line-by-line choice. */
type PurchaseAsk =
  { readonly all: true } | { readonly all: false; readonly choices: readonly LineChoice[]; readonly foreign: boolean };

function reservationAt(m: Readonly<Model>, pick: number): ModelReservation | undefined {
  // One pick in ten names a reservation that does not exist.
  return pick % 10 === 9 ? undefined : m.reservations[pick % m.reservations.length];
}

function linesAsked(r: ModelReservation, ask: PurchaseAsk, foreignSku: string): CartLine[] | null {
  if (ask.all) return null;
  const asked = r.lines.flatMap((l, i): CartLine[] => {
    const choice = ask.choices[i % ask.choices.length]!;
    if (choice === 'omit') return [];
    return [{ sku: l.sku, quantity: choice === 'one' ? 1 : choice === 'whole' ? l.quantity : l.quantity + 1 }];
  });
  // The API takes at least one line: a purchase naming none names the first, once.
  if (asked.length === 0) asked.push({ sku: r.lines[0]!.sku, quantity: 1 });
  if (ask.foreign) asked.push({ sku: foreignSku, quantity: 1 });
  return asked;
}

class Operate extends Step {
  constructor(
    readonly action: 'purchase' | 'cancel' | 'extend',
    readonly pick: number,
    readonly ask: PurchaseAsk,
    readonly ttlSeconds: number,
    readonly keyed: boolean,
    readonly via: number,
  ) {
    super();
  }
  override check(m: Readonly<Model>) {
    return m.reservations.length > 0;
  }
  describe() {
    const asked = this.ask.all ? ' all' : ` ${this.ask.choices.join(',')}${this.ask.foreign ? ' +foreign' : ''}`;
    const what = this.action === 'purchase' ? asked : this.action === 'extend' ? ` ttl=${this.ttlSeconds}s` : '';
    return `${this.action}${what} reservation#${this.pick}${this.keyed ? ' keyed' : ''} via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    const r = reservationAt(m, this.pick);
    const reservationId = r?.id ?? randomUUID();
    const idempotencyKey = this.keyed ? w.key() : null;
    const common = { reservationId, idempotencyKey, requestId: 'req' };
    // A SKU of this run that is no line of the reservation: an existing product or not.
    const foreign = [...m.products.keys(), w.sku('D')].find((sku) => !r?.lines.some((l) => l.sku === sku))!;
    const op: Extract<Sent, { route: 'reservation' }>['op'] =
      this.action === 'purchase'
        ? { type: 'purchase', ...common, lines: r ? linesAsked(r, this.ask, foreign) : null }
        : this.action === 'extend'
          ? { type: 'extend', ...common, ttlSeconds: this.ttlSeconds }
          : { type: 'cancel', ...common };
    this.note = `${reservationId.slice(0, 8)}${idempotencyKey === null ? '' : ` ${idempotencyKey.slice(-4)}`}`;
    await exchange(m, w, this.via, { route: 'reservation', op }, this.toString());
  }
}

function rememberedAt(m: Readonly<Model>, pick: number): Remembered | undefined {
  const all = [...m.records.values()];
  return all[pick % Math.max(all.length, 1)];
}

/** A retry with a fresh request id; a new reservation also gets a fresh id (the API makes one per request). */
function again(sent: Sent): Sent {
  switch (sent.route) {
    case 'cart':
      return { route: 'cart', op: { ...sent.op, reservationId: randomUUID(), requestId: 'retry' } };
    case 'product':
      return { ...sent, command: { ...sent.command, reservationId: randomUUID(), requestId: 'retry' } };
    case 'reservation':
      return { route: 'reservation', op: { ...sent.op, requestId: 'retry' } };
  }
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
    const sent = again(prior.sent);
    this.note = `${prior.payload.slice(0, 40)} ${keyOf(sent)!.slice(-4)}`;
    const expected = modelExecute(m, sent);
    expect(expected).toEqual({ type: 'done', replayed: true, outcome: prior.outcome });
    expectResult(await w.send(this.via, sent), expected, this.toString());
  }
}

/** The same key with another payload: idempotency_key_reused, and nothing changes. */
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
    const sent = otherPayload(again(prior.sent));
    this.note = `${payloadOf(sent).slice(0, 40)} ${keyOf(sent)!.slice(-4)}`;
    const expected = modelExecute(m, sent);
    expect(expected).toEqual({ type: 'failed', code: 'idempotency_key_reused' });
    expectResult(await w.send(this.via, sent), expected, this.toString());
  }
}

function otherPayload(sent: Sent): Sent {
  switch (sent.route) {
    case 'cart': {
      const [first, ...rest] = sent.op.lines;
      return { route: 'cart', op: { ...sent.op, lines: [{ ...first!, quantity: first!.quantity + 1 }, ...rest] } };
    }
    case 'product':
      return { ...sent, command: { ...sent.command, quantity: sent.command.quantity + 1 } };
    case 'reservation': {
      const { op } = sent;
      const common = { reservationId: op.reservationId, idempotencyKey: op.idempotencyKey, requestId: op.requestId };
      return {
        route: 'reservation',
        op:
          op.type === 'extend'
            ? { ...op, ttlSeconds: op.ttlSeconds + 1 }
            : op.type === 'purchase'
              ? { type: 'cancel', ...common }
              : { type: 'purchase', ...common, lines: null },
      };
    }
  }
}

/** G6: one sweep expires exactly the active reservations whose expiresAt has passed, each as a whole. */
class Sweep extends Step {
  constructor(readonly via: number) {
    super();
  }
  describe() {
    return `sweep via#${this.via}`;
  }
  async apply(m: Model, w: World) {
    const due = m.reservations.filter((r) => r.status === 'active' && r.expiresAtMs <= m.nowMs);
    for (const r of due) finish(m, r, 'expired');
    // After expiring, the sweep drops the idempotency records past their retention.
    for (const [key, record] of m.records) if (record.atMs < m.nowMs - idempotencyRetentionMs) m.records.delete(key);
    const report = await w.instances[this.via]!.sweeper.sweepOnce();
    // `due` counts lines (a cart is due once per line), `expired` reservations.
    expect(report).toEqual({ due: due.reduce((n, r) => n + r.lines.length, 0), expired: due.length, failed: 0 });
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const letter = fc.oneof(
  { weight: 9, arbitrary: fc.constantFrom<Letter>('A', 'B', 'C') },
  { weight: 1, arbitrary: fc.constant<Letter>('D') },
);
const via = fc.constantFrom(0, 1);
const pick = fc.nat(64);
const ttlSeconds = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 300 }) },
  { weight: 1, arbitrary: fc.constant(reservationLifetimeMaxSeconds) },
);
const quantity = fc.integer({ min: 1, max: 4 });
const cartLines = fc.uniqueArray(fc.record({ letter, quantity }), {
  minLength: 1,
  maxLength: 3,
  selector: (l) => l.letter,
});
const lineChoice = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<LineChoice>('omit', 'one', 'whole') },
  { weight: 1, arbitrary: fc.constant<LineChoice>('over') },
);
const purchaseAsk: fc.Arbitrary<PurchaseAsk> = fc.oneof(
  fc.constant({ all: true } as const),
  fc.record({
    all: fc.constant(false as const),
    choices: fc.array(lineChoice, { minLength: 3, maxLength: 3 }),
    foreign: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  }),
);
const operate = (action: 'purchase' | 'cancel' | 'extend') =>
  fc
    .tuple(pick, purchaseAsk, ttlSeconds, fc.boolean(), via)
    .map(([p, ask, ttl, k, v]) => new Operate(action, p, ask, ttl, k, v));

/** fc.commands picks among its arbitraries uniformly: an arbitrary listed n times has weight n. */
const weighted = (weight: number, arbitrary: fc.Arbitrary<Step>) => Array.from({ length: weight }, () => arbitrary);
const commandArbitraries: fc.Arbitrary<Step>[] = [
  ...weighted(
    4,
    fc.tuple(cartLines, ttlSeconds, via).map(([lines, ttl, v]) => new ReserveCart(lines, ttl, v)),
  ),
  ...weighted(
    1,
    fc.tuple(letter, quantity, ttlSeconds, via).map(([l, q, ttl, v]) => new ReserveOne(l, q, ttl, v)),
  ),
  ...weighted(4, operate('purchase')),
  ...weighted(2, operate('cancel')),
  ...weighted(2, operate('extend')),
  ...weighted(
    2,
    fc.tuple(pick, via).map(([p, v]) => new Replay(p, v)),
  ),
  ...weighted(
    1,
    fc.tuple(pick, via).map(([p, v]) => new ReuseKey(p, v)),
  ),
  ...weighted(
    1,
    fc.integer({ min: 1, max: 120_000 }).map((ms) => new Advance<Model, World>(ms)),
  ),
  ...weighted(
    2,
    fc.tuple(pick, fc.constantFrom<-1 | 0 | 1>(-1, 0, 1)).map(([p, o]) => new AdvanceToExpiry<Model, World>(p, o)),
  ),
  ...weighted(
    2,
    via.map((v) => new Sweep(v)),
  ),
  ...weighted(
    1,
    via.map((v) => new Restart<Model, World>(v)),
  ),
  ...weighted(
    1,
    fc.constant(null).map(() => new Passivate<Model, World>()),
  ),
];

/** The run's products (three or four) and their stocks, created before the commands run. */
class InitialStocks {
  constructor(readonly stocks: readonly number[]) {}
  [fc.toStringMethod](): string {
    return this.stocks.map((s, i) => `create ${'ABCD'[i]} stock=${s}`).join(', ');
  }
}
const initialStocks = fc
  .array(fc.integer({ min: 0, max: 12 }), { minLength: 3, maxLength: 4 })
  .map((s) => new InitialStocks(s));

/** The run's products, created through both instances, and a model that knows them. */
async function startRun(world: World, stocks: readonly number[]): Promise<Model> {
  const model: Model = { nowMs: world.clock.nowMs(), products: new Map(), reservations: [], records: new Map() };
  for (const [i, stock] of stocks.entries()) {
    const sku = world.sku('ABCD'[i] as Letter);
    const created = await world.instances[i % 2]!.registry.createProduct(sku, sku, stock, 'req');
    expect(created.type).toBe('created');
    model.products.set(sku, { sku, total: stock, reserved: 0, purchased: 0, version: 1 });
  }
  return model;
}

describe('carts model', () => {
  it('G1 G2 G3 G4 G6 G7: carts and all done to them, over two instances, keep engine and model equal', async () => {
    const commands = fc.commands(commandArbitraries, { maxCommands: commandsMax, size: 'max' });
    await fc.assert(
      fc.asyncProperty(initialStocks, commands, async (initial, steps) => {
        const world = new World();
        try {
          const model = await startRun(world, initial.stocks);
          await fc.asyncModelRun(() => ({ model, real: world }), steps);
        } finally {
          await world.stop();
        }
      }),
      { ...settings, verbose: 1 },
    );
  }, 600_000);

  // Found by the model: a keyed operation whose decision wrote nothing stored no answer, so its
  // retry ran again (not a replay) and the key could be spent a second time on something else.
  it('G2: a keyed operation that changes nothing on a cart still stores its answer for replays', async () => {
    const world = new World();
    try {
      const model = await startRun(world, [5, 5, 5]);
      const cart = [
        { letter: 'A' as const, quantity: 1 },
        { letter: 'B' as const, quantity: 2 },
      ];
      const steps: Step[] = [
        new ReserveCart(cart, 60, 0),
        new Operate('cancel', 0, { all: true }, 60, false, 0),
        // Record #1: the cancel of a cancelled cart.
        new Operate('cancel', 0, { all: true }, 60, true, 1),
        new Replay(1, 0),
        new ReuseKey(1, 1),
        new ReserveCart(cart, 60, 1),
        new Operate('purchase', 1, { all: true }, 60, false, 0),
        // Record #3: the same purchase of a purchased cart again.
        new Operate('purchase', 1, { all: true }, 60, true, 0),
        new Replay(3, 1),
        new ReuseKey(3, 0),
      ];
      for (const step of steps) await step.run(model, world);
    } finally {
      await world.stop();
    }
  });
});
