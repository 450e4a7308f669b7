import { randomUUID } from 'node:crypto';
import type fc from 'fast-check';
import { ManualClock } from '../../src/engine/clock.ts';
import { startEngine, type EngineInstance } from './engine.ts';

// The harness of the model-based property tests over the whole engine (test/property/
// engine-model.test.ts, carts-model.test.ts): two engine instances over one database and the clock
// they share, the step every command extends, and the steps both models take alike (clock moves,
// restarts, passivation). Each file brings its model, its commands and its checks.

/**
 * fast-check's settings from the environment: PROPERTY_RUNS sets the number of runs (the default
 * keeps a file within a minute or so); PROPERTY_SEED and PROPERTY_PATH replay a failing run
 * (fast-check prints both).
 */
export function propertySettings(runsDefault: number): { numRuns: number; seed?: number; path?: string } {
  const seed = process.env.PROPERTY_SEED;
  const path = process.env.PROPERTY_PATH;
  return {
    numRuns: Number(process.env.PROPERTY_RUNS ?? runsDefault),
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    ...(path === undefined ? {} : { path }),
  };
}

let runs = 0;

/**
 * Two engine instances over a database and the clock they share. The database is shared by all
 * runs of a file, so each run starts `spacingMs` earlier than the run before it and names its
 * products with its own prefix: no sweep of a run finds another run's reservations due, and no
 * cleanup of idempotency records reaches another run's records. The second instance pipelines its
 * batches of carts (two in flight), the first does not (the default), so a run exercises both.
 * `verify` is the file's check of engine, database and model after every step.
 */
export abstract class ModelWorld<M> {
  readonly run = runs++;
  readonly prefix: string;
  readonly clock: ManualClock;
  readonly instances: EngineInstance[];

  constructor(
    private readonly databaseUrl: string,
    tag: string,
    spacingMs: number,
  ) {
    this.prefix = `${tag}${this.run}-${randomUUID().slice(0, 6)}`;
    this.clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z') - this.run * spacingMs);
    this.instances = [0, 1].map((i) => this.startInstance(i));
  }

  abstract verify(m: M): Promise<void>;

  sku(letter: string): string {
    return `${this.prefix}-${letter}`;
  }

  /** A process restart: every bit of engine memory is gone; only the database remains. */
  async restart(i: number): Promise<void> {
    await this.instances[i]!.stop();
    this.instances[i] = this.startInstance(i);
  }

  private startInstance(i: number): EngineInstance {
    return startEngine(this.databaseUrl, this.clock, { settings: { cartBatchesInFlightMax: i + 1 } });
  }

  async stop(): Promise<void> {
    await Promise.all(this.instances.map((x) => x.stop()));
  }
}

/** A command of a model run: applied to model and engine alike, then checked (`ModelWorld.verify`). */
export abstract class ModelStep<M extends object, W extends ModelWorld<M>> implements fc.AsyncCommand<M, W> {
  /** Filled in while running, so a counterexample shows the keys and ids it used. */
  protected note = '';
  check(_m: Readonly<M>): boolean {
    return true;
  }
  async run(m: M, w: W): Promise<void> {
    await this.apply(m, w);
    await w.verify(m);
  }
  protected abstract apply(m: M, w: W): Promise<void>;
  abstract describe(): string;
  toString(): string {
    return this.note === '' ? this.describe() : `${this.describe()} [${this.note}]`;
  }
}

/** What the shared steps read of a model: its time and its reservations' expiries. */
interface TimedModel {
  nowMs: number;
  readonly reservations: readonly { readonly status: string; readonly expiresAtMs: number }[];
}

export class Advance<M extends TimedModel, W extends ModelWorld<M>> extends ModelStep<M, W> {
  constructor(readonly ms: number) {
    super();
  }
  describe() {
    return `advance ${this.ms}ms`;
  }
  async apply(m: M, w: W) {
    m.nowMs += this.ms;
    w.clock.advance(this.ms);
  }
}

/** Moves the clock to just before, at or just after an active reservation's expiry: the boundary. */
export class AdvanceToExpiry<M extends TimedModel, W extends ModelWorld<M>> extends ModelStep<M, W> {
  constructor(
    readonly pick: number,
    readonly offsetMs: -1 | 0 | 1,
  ) {
    super();
  }
  private target(m: Readonly<M>): number | undefined {
    const future = m.reservations.filter((r) => r.status === 'active' && r.expiresAtMs + this.offsetMs > m.nowMs);
    const r = future[this.pick % Math.max(future.length, 1)];
    return r === undefined ? undefined : r.expiresAtMs + this.offsetMs;
  }
  override check(m: Readonly<M>) {
    return this.target(m) !== undefined;
  }
  describe() {
    return `advance to expiry of active#${this.pick} ${this.offsetMs >= 0 ? '+' : ''}${this.offsetMs}ms`;
  }
  async apply(m: M, w: W) {
    const ms = this.target(m)! - m.nowMs;
    this.note = `${ms}ms`;
    m.nowMs += ms;
    w.clock.advance(ms);
  }
}

/** A process restart: every bit of engine memory is gone; only the database remains. */
export class Restart<M extends object, W extends ModelWorld<M>> extends ModelStep<M, W> {
  constructor(readonly which: number) {
    super();
  }
  describe() {
    return `restart instance#${this.which}`;
  }
  async apply(_m: M, w: W) {
    await w.restart(this.which);
  }
}

export class Passivate<M extends object, W extends ModelWorld<M>> extends ModelStep<M, W> {
  describe() {
    return 'passivate idle actors';
  }
  async apply(_m: M, w: W) {
    for (const instance of w.instances) instance.registry.passivateIdle();
  }
}
