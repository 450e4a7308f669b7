import pg from 'pg';
import { StorageError } from '../engine/errors.ts';

export interface PoolSettings {
  readonly connectionString: string;
  readonly poolSize: number;
  readonly connectionAcquireTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly queryTimeoutMs: number;
  readonly idleInTransactionTimeoutMs: number;
}

/**
 * What the persistence classes ask of a pool: queries, and a connection for a transaction, in
 * their promise forms. A pg.Pool for one plain host; the PrimaryLocator (primary-locator.ts) that
 * follows the primary of several.
 */
export type DatabasePool = Pick<pg.Pool, 'query' | 'connect'>;

/**
 * A pool whose every wait is bounded: acquiring a connection, a statement on the server, a
 * query on the client (a frozen server never answers) and an open transaction left idle.
 */
export function createPool(settings: PoolSettings, onIdleError: (error: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    connectionString: settings.connectionString,
    max: settings.poolSize,
    connectionTimeoutMillis: settings.connectionAcquireTimeoutMs,
    statement_timeout: settings.statementTimeoutMs,
    query_timeout: settings.queryTimeoutMs,
    idle_in_transaction_session_timeout: settings.idleInTransactionTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'secventory',
    types: { getTypeParser: typeParser },
  });
  // An idle connection that dies (database restarted, backend terminated) emits 'error' on the
  // pool; unhandled, that would crash the process. The pool replaces the connection by itself.
  pool.on('error', onIdleError);
  // pg-pool listens for 'error' only on idle clients, and stops the moment it hands a client to a
  // waiter - which can be before the waiter's code runs, while a terminated backend's FATAL is
  // already in the buffer. Every client listens for its whole life, so no connection error can
  // become an uncaught exception; its user still sees it as a failed query.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

// Every bigint this service reads (counters, versions, epoch milliseconds) fits in a double.
const int8Oid = 20;
function typeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  if (oid === int8Oid) return (value: string) => Number(value);
  // pg declares its parsers' results as any: what a column holds is said by each query's row type.
  return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown;
}

/** SQLSTATE raised by secventory_commit_batches when a reservation changed behind the version. */
export const statusConflictSqlState = 'SV409';

// Classes and codes after which a retry can succeed: the connection or the server went away,
// a timeout fired, the server is starting or shutting down, or it refused a write as read-only
// (25006: a primary demoted to a standby, or a standby promoted but not yet taking writes; the
// locator finds the new primary and the retry goes there).
const transientSqlStates = new Set([
  '25006',
  '57014',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '53400',
  '40001',
  '40P01',
  '55P03',
  '25P03',
]);

export function isTransient(sqlState: string | undefined): boolean {
  if (sqlState === undefined) return true; // no SQLSTATE: a network or client-side failure
  return sqlState.startsWith('08') || transientSqlStates.has(sqlState);
}

/** Turns any error from pg into a StorageError the engine understands. */
export function storageError(error: unknown, what: string): StorageError {
  if (error instanceof StorageError) return error;
  const sqlState =
    typeof error === 'object' &&
    error !== null &&
    'code' in error &&
    typeof error.code === 'string' &&
    /^[0-9A-Z]{5}$/.test(error.code)
      ? error.code
      : undefined;
  const message = error instanceof Error ? error.message : String(error);
  return new StorageError(`${what}: ${message}`, isTransient(sqlState), sqlState, { cause: error });
}

/** Runs `work` and maps failures to StorageError. */
export async function guarded<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw storageError(error, what);
  }
}

/** Runs `work` in a transaction on one connection; rolls back on any failure. */
export async function inTransaction<T>(
  pool: DatabasePool,
  begin: string,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (error) {
    // A connection that failed mid-transaction is not trusted again: release it as broken.
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(error instanceof Error ? error : true);
    throw error;
  }
}
