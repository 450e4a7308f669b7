import pg from 'pg';

/**
 * A small pool for a checker's own SQL (the oracle's, a test's, the proof's) that tolerates the
 * database going away under it: the chaos tests and the proof kill PostgreSQL on purpose, and an
 * idle client's connection error must not be an uncaught exception in the checker.
 */
export function checkPool(databaseUrl: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => {});
  return pool;
}
