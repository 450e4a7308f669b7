import type pg from 'pg';
import type { Clock } from '../../src/engine/clock.ts';
import { Registry, type RegistrySettings } from '../../src/engine/registry.ts';
import type { Store } from '../../src/engine/store.ts';
import { Sweeper } from '../../src/engine/sweeper.ts';
import { createPool } from '../../src/persistence/database.ts';
import { PgStore } from '../../src/persistence/pg-store.ts';
import { InvariantWatch } from './invariant-watch.ts';

/**
 * One engine "process" without HTTP: its own pool, store, registry and sweeper over a shared
 * database. Two of them over one database are two instances; stopping one and starting another
 * is a process restart (all memory gone, the database is all that is left).
 */
export interface EngineInstance {
  readonly pool: pg.Pool;
  readonly store: Store;
  readonly registry: Registry;
  readonly sweeper: Sweeper;
  /** Every invariant violation this instance reported; `stop` fails when there was one. */
  readonly watch: InvariantWatch;
  stop(): Promise<void>;
}

export const engineSettings: RegistrySettings = {
  batchSizeMax: 512,
  mailboxLengthMax: 10_000,
  liveActorsPerShardMax: 8192,
  // Passivation runs only when a test calls passivateIdle(); then every idle actor goes.
  actorIdleMs: 0,
};

export interface EngineOptions {
  readonly settings?: Partial<RegistrySettings>;
  /** Wraps the PgStore, e.g. to let fc.scheduler decide when each storage call starts. */
  readonly wrapStore?: (store: Store) => Store;
  readonly poolSize?: number;
}

export function startEngine(databaseUrl: string, clock: Clock, options: EngineOptions = {}): EngineInstance {
  const pool = createPool(
    {
      connectionString: databaseUrl,
      poolSize: options.poolSize ?? 4,
      connectionAcquireTimeoutMs: 10_000,
      statementTimeoutMs: 10_000,
      queryTimeoutMs: 15_000,
      idleInTransactionTimeoutMs: 15_000,
    },
    () => {},
  );
  const pgStore = new PgStore(pool);
  const store = options.wrapStore?.(pgStore) ?? pgStore;
  const watch = new InvariantWatch();
  const registry = new Registry(store, clock, { ...engineSettings, ...options.settings }, watch);
  const sweeper = new Sweeper(registry, store, clock, 1_000_000, watch);
  return {
    pool,
    store,
    registry,
    sweeper,
    watch,
    stop: async () => {
      await registry.drained();
      await pool.end();
      watch.assertNone();
    },
  };
}
