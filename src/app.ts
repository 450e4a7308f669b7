import path from 'node:path';
import type { Logger } from 'pino';
import { Metrics } from './api/metrics.ts';
import { buildServer, type ServerDeps } from './api/server.ts';
import type { Config } from './config.ts';
import { systemClock, type Clock } from './engine/clock.ts';
import { idleInTransactionTimeoutMs, passivationIntervalMs, shutdownDrainMsMax } from './engine/limits.ts';
import type { EngineObserver } from './engine/observer.ts';
import { idempotencyKeyOf } from './engine/fingerprint.ts';
import { Registry } from './engine/registry.ts';
import { Sweeper } from './engine/sweeper.ts';
import type { DatabasePool } from './persistence/database.ts';
import { EmbeddedServer } from './persistence/embedded-postgres.ts';
import { PgEventLog } from './persistence/event-log.ts';
import { migrate, migrationsDir } from './persistence/migrate.ts';
import { PgStore } from './persistence/pg-store.ts';
import { openPool, type LocatorEvent, type OpenedPool } from './persistence/primary-locator.ts';
import { PgReadModel } from './persistence/read-model.ts';
import { runUntil, type ShutdownStep } from './shutdown.ts';
import { readdirSync } from 'node:fs';

export interface App {
  readonly url: string;
  readonly databaseUrl: string;
  readonly registry: Registry;
  readonly sweeper: Sweeper;
  readonly pool: DatabasePool;
  readonly embedded: EmbeddedServer | undefined;
  /**
   * Stops in order: HTTP (draining), sweeper, actors, pool, then the embedded PostgreSQL if it was
   * started here; within shutdownMsMax whatever state the database is in.
   */
  stop(): Promise<void>;
}

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly observers?: readonly EngineObserver[];
  /** Called on the HTTP server before its hooks and routes are added (tests install checks here). */
  readonly configureServer?: ServerDeps['configure'];
}

export const databaseName = 'secventory';

export function knownMigrations(): string[] {
  return readdirSync(migrationsDir)
    .filter((f) => f.endsWith('.sql'))
    .map((f) => f.replace(/\.sql$/, ''))
    .sort();
}

/**
 * Starts the embedded PostgreSQL under the data dir, or reuses the one already running there (a
 * running service's, or one left by a killed process), and makes sure Secventory's database exists.
 */
export async function startEmbeddedDatabase(
  dataDir: string,
  logger: Logger,
): Promise<{ server: EmbeddedServer; url: string }> {
  const pgDir = path.join(dataDir, 'postgres');
  const server = new EmbeddedServer({ dataDir: pgDir, log: (line) => logger.debug({ postgres: line }) });
  await server.start();
  try {
    await server.ensureDatabase(databaseName);
  } catch (error) {
    await server.stop();
    throw error;
  }
  // A reused server keeps running after this process: it was started by another (see README).
  logger.info(
    { dataDir: pgDir, port: server.port, reused: server.reused },
    'embedded PostgreSQL is running; its data lives in dataDir',
  );
  return { server, url: server.socketUrlFor(databaseName) };
}

/** Failures that answer 5xx: the request was not acknowledged and left no event. */
const notAcknowledged: ReadonlySet<string> = new Set(['storage_unavailable', 'overloaded', 'internal_error']);

/** Logs every failure that left no trace in the database, so log + audit trail cover every request. */
function failureLogger(logger: Logger): EngineObserver {
  return {
    commandCompleted(sku, command, result) {
      // Failures were not acknowledged and are not audit events: the log is their record.
      if (result.type !== 'failed' || !notAcknowledged.has(result.code)) return;
      const { code, reason } = result;
      const ids =
        command.type === 'expire'
          ? { reservationId: command.reservationId, source: 'sweeper' }
          : {
              requestId: command.requestId,
              idempotencyKey: idempotencyKeyOf(command),
              reservationId: 'reservationId' in command ? command.reservationId : undefined,
            };
      // A storage failure during COMMIT is in doubt: the effect may be in the database. Either way
      // nothing was acknowledged, and a retry with the same key replays it or executes it once.
      const inDoubt = code === 'storage_unavailable';
      logger.warn({ sku, command: command.type, code, reason, inDoubt, ...ids }, 'command not acknowledged');
    },
    cartCompleted(op, result) {
      // As for commands: a cart operation that failed left no event; the log is its record.
      if (result.type !== 'failed' || !notAcknowledged.has(result.code)) return;
      const { code, reason } = result;
      const ids =
        op.type === 'expire'
          ? { reservationId: op.reservationId, source: 'sweeper' }
          : {
              requestId: op.requestId,
              idempotencyKey: op.idempotencyKey ?? undefined,
              reservationId: op.reservationId,
            };
      const skus = op.type === 'reserve' ? op.lines.map((l) => l.sku) : undefined;
      const inDoubt = code === 'storage_unavailable';
      logger.warn({ cart: op.type, skus, code, reason, inDoubt, ...ids }, 'cart operation not acknowledged');
    },
    invariantViolated(sku, error) {
      logger.error(
        { sku, err: error },
        'invariant violated: the commands involved answered internal_error; the actor reloads from the database',
      );
    },
    versionConflict(sku) {
      logger.info({ sku }, 'version conflict: another writer changed the product; reloading');
    },
  };
}

// Required: a callback added to EngineObserver and forgotten here is a compile error, not silence.
export function composeObservers(observers: readonly EngineObserver[]): Required<EngineObserver> {
  const each =
    <K extends keyof EngineObserver>(key: K): Required<EngineObserver>[K] =>
    (...args: unknown[]) => {
      for (const o of observers) (o[key] as ((...a: unknown[]) => void) | undefined)?.(...args);
    };
  // The per-command callback without a rest-arguments array: it runs for every request.
  const completed = observers.flatMap((o) => (o.commandCompleted === undefined ? [] : [o.commandCompleted.bind(o)]));
  return {
    commandCompleted: (sku, command, result, latencyMs) => {
      for (const f of completed) f(sku, command, result, latencyMs);
    },
    cartCompleted: each('cartCompleted'),
    batchCommitted: each('batchCommitted'),
    commitStatement: each('commitStatement'),
    versionConflict: each('versionConflict'),
    storageError: each('storageError'),
    invariantViolated: each('invariantViolated'),
    expiriesSwept: each('expiriesSwept'),
    actorActivated: each('actorActivated'),
    actorPassivated: each('actorPassivated'),
  };
}

/**
 * The pool every query of the service goes through (the store, the sweeper's, the reads of
 * reservations and events, /health/ready): on DATABASE_URL's one host, or on whichever of its hosts
 * is the primary, followed when it moves (src/persistence/primary-locator.ts).
 */
function openDatabasePool(databaseUrl: string, config: Config, logger: Logger): Promise<OpenedPool> {
  return openPool(
    databaseUrl,
    {
      poolSize: config.poolSize,
      connectionAcquireTimeoutMs: config.connectionAcquireTimeoutMs,
      statementTimeoutMs: config.statementTimeoutMs,
      queryTimeoutMs: config.queryTimeoutMs,
      idleInTransactionTimeoutMs,
    },
    (error) => logger.warn({ reason: error.message }, 'idle database connection failed; the pool replaces it'),
    (event) => logLocatorEvent(logger, event),
  );
}

function logLocatorEvent(logger: Logger, event: LocatorEvent): void {
  switch (event.type) {
    case 'searching':
      logger.warn({ from: event.from, reason: event.reason }, 'looking for the primary among the DATABASE_URL hosts');
      return;
    case 'moved':
      logger.warn(
        { from: event.from, to: event.to, searchMs: Math.round(event.searchMs) },
        'the primary moved: queries go to the new one',
      );
      return;
    case 'stayed':
      logger.info({ host: event.host }, 'the primary has not moved');
      return;
    case 'not-found':
      logger.error(
        { rounds: event.rounds, reasons: event.reasons },
        'no DATABASE_URL host is the primary; the next failed query searches again',
      );
      return;
    default: {
      const unreachable: never = event;
      throw new Error(`unknown locator event ${JSON.stringify(unreachable)}`);
    }
  }
}

/** What a start has set going so far: what a stop, or a failed start, must stop. */
interface Running {
  embedded?: EmbeddedServer;
  pool?: OpenedPool;
  registry?: Registry;
  sweeper?: Sweeper;
  passivation?: NodeJS.Timeout;
  server?: Awaited<ReturnType<typeof buildServer>>;
}

/** Starts the service; a start that fails stops what it had started (PostgreSQL included) and rethrows. */
export async function startApp(options: AppOptions): Promise<App> {
  const running: Running = {};
  try {
    return await startParts(options, running);
  } catch (error) {
    await stopRunning(running, options.logger);
    throw error;
  }
}

async function startParts(options: AppOptions, running: Running): Promise<App> {
  const { config, logger, clock = systemClock, observers = [], configureServer: configure } = options;
  let databaseUrl = config.databaseUrl;
  if (databaseUrl === undefined) {
    const started = await startEmbeddedDatabase(config.dataDir, logger);
    running.embedded = started.server;
    databaseUrl = started.url;
  }
  const opened = (running.pool = await openDatabasePool(databaseUrl, config, logger));
  // On the server the pool uses: with several hosts, the primary the locator found.
  const applied = await migrate(opened.url(), {
    info: (m) => logger.debug(m),
    warn: (m) => logger.warn(m),
    error: (m) => logger.error(m),
  });
  if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  const { pool } = opened;

  const readModel = new PgReadModel(pool);
  const eventLog = new PgEventLog(pool);
  const metrics = new Metrics(readModel);
  const observer = composeObservers([failureLogger(logger), metrics, ...observers]);
  const store = new PgStore(pool, observer);
  const registry = (running.registry = new Registry(
    store,
    clock,
    {
      batchSizeMax: config.batchSizeMax,
      mailboxLengthMax: config.mailboxLengthMax,
      liveActorsPerShardMax: config.liveActorsPerShardMax,
      actorIdleMs: config.actorIdleMs,
    },
    observer,
  ));
  metrics.watch(registry);
  const sweeper = (running.sweeper = new Sweeper(registry, store, clock, config.sweepIntervalMs, observer, (error) =>
    logger.warn({ reason: error.message }, 'sweep failed; the next one retries'),
  ));
  running.passivation = setInterval(() => registry.passivateIdle(), passivationIntervalMs);
  running.passivation.unref();

  const expectedMigrations = knownMigrations();
  const server = (running.server = await buildServer({
    registry,
    metrics,
    readModel,
    eventLog,
    expectedMigrations,
    logger,
    eventStreams: { streamsMax: config.eventStreamsMax, heartbeatMs: config.eventStreamHeartbeatMs },
    configure,
  }));
  // A deep accept queue: a flash sale opens thousands of connections at once.
  const address = await server.listen({ host: config.host, port: config.port, backlog: 4096 });
  sweeper.start();
  logger.info({ address }, 'secventory is serving');

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopRunning(running, logger));
  return { url: address, databaseUrl, registry, sweeper, pool, embedded: running.embedded, stop };
}

/**
 * Stops in order - HTTP (draining requests in progress), sweeper, actors, pool, then the embedded
 * PostgreSQL if it was started here - within shutdownMsMax whatever state the database is in:
 * draining gets shutdownDrainMsMax, then open connections are closed and what is left is
 * abandoned; PostgreSQL's own stop is bounded by postgresStopMsMax.
 */
async function stopRunning(running: Running, logger: Logger): Promise<void> {
  const { server, sweeper, registry, pool, embedded } = running;
  clearInterval(running.passivation);
  const steps: ShutdownStep[] = [];
  if (server !== undefined) steps.push({ name: 'HTTP draining', run: () => server.close() });
  if (sweeper !== undefined) steps.push({ name: 'sweeper', run: () => sweeper.stop() });
  if (registry !== undefined) steps.push({ name: 'actors', run: () => registry.drained() });
  if (pool !== undefined) steps.push({ name: 'pool', run: () => pool.end() });
  const failed = (step: string, error: unknown) =>
    logger.warn({ step, reason: error instanceof Error ? error.message : String(error) }, 'shutdown step failed');
  const outcome = await runUntil(steps, Date.now() + shutdownDrainMsMax, failed);
  if (!outcome.finished) {
    logger.warn({ step: outcome.step, drainMsMax: shutdownDrainMsMax }, 'shutdown: draining took too long');
    // Requests still waiting on the database are cut off unanswered; their clients retry them (G2).
    server?.server.closeAllConnections();
  }
  await embedded?.stop();
}
