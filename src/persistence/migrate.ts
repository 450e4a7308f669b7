import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PG_MIGRATE_LOCK_ID, runner } from 'node-pg-migrate';
import pg from 'pg';
import { primaryUrl } from './primary-search.ts';

export const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));
export const migrationsTable = 'secventory_migrations';

/**
 * node-pg-migrate ignores the file names this matches (it anchors the pattern with ^ and $): all but
 * the numbered `NNNN_name.sql`, so migrations/README.md is not taken for a migration.
 */
const notNumberedMigration = '(?!\\d{4}_[a-z0-9_]+\\.sql$).*';

/** The runner's transaction statements in singleTransaction mode, exactly as it sends them. */
const runnerTransactionControl = /^(BEGIN|COMMIT|ROLLBACK)$/;

export interface MigrationLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/**
 * Brings a database to the current schema in one transaction, under node-pg-migrate's advisory lock
 * (the same key an older build's runner takes, so instances of either starting together queue up):
 * first the numbered files of migrations/ that it has not applied yet, each exactly once; then every
 * file of migrations/functions/, the current definition of each function (CREATE OR REPLACE), on
 * every run. Either all of it is applied or none. Returns the numbered migrations it applied.
 */
export async function migrate(databaseUrl: string, log: MigrationLog, directory = migrationsDir): Promise<string[]> {
  // On the primary when DATABASE_URL names several hosts: a standby cannot take the schema.
  const client = new pg.Client({ connectionString: await primaryUrl(databaseUrl) });
  client.on('error', (error) => log.warn(`migration connection: ${error.message}`));
  await client.connect();
  try {
    await client.query('begin');
    try {
      // Held until this transaction ends, so the functions are applied under it too.
      await client.query('select pg_advisory_xact_lock($1::bigint)', [String(PG_MIGRATE_LOCK_ID)]);
      const applied = await runner({
        dbClient: joiningTransaction(client),
        dir: directory,
        ignorePattern: notNumberedMigration,
        migrationsTable,
        direction: 'up',
        checkOrder: true,
        singleTransaction: true,
        noLock: true,
        logger: { info: (m) => log.info(m), warn: (m) => log.warn(m), error: (m) => log.error(m), debug: () => {} },
      });
      await applyFunctions(client, path.join(directory, 'functions'), log);
      await client.query('commit');
      return applied.map((m) => m.name);
    } catch (error) {
      // A failed rollback means a lost connection, which ends the transaction as well; the error
      // that matters is the one that made us roll back.
      await client.query('rollback').catch((rollbackError: Error) => log.warn(`rollback: ${rollbackError.message}`));
      throw error;
    }
  } finally {
    await client.end();
  }
}

/**
 * The client as the runner sees it: its BEGIN, COMMIT and ROLLBACK do nothing, because the
 * transaction is migrate's and must stay open for the functions. Everything else goes through.
 */
function joiningTransaction(client: pg.Client): pg.ClientBase {
  const query = (text: unknown, values?: unknown[]) =>
    typeof text === 'string' && runnerTransactionControl.test(text.trim())
      ? Promise.resolve({ rows: [], rowCount: null })
      : client.query(text as string, values);
  // The runner only calls query() on a client it was given (it neither connects nor ends it).
  return { query } as unknown as pg.ClientBase;
}

/**
 * Applies each file of `dir` in name order. Each holds one function's current definition as
 * CREATE OR REPLACE, so applying it again changes nothing. A function whose parameter list or
 * result type changes must first be dropped by a numbered migration (DROP FUNCTION IF EXISTS with the
 * old signature): CREATE OR REPLACE would add a second function next to the old one, or fail.
 */
async function applyFunctions(client: pg.Client, dir: string, log: MigrationLog): Promise<void> {
  const files = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort();
  for (const name of files) {
    log.info(`> function ${name}`);
    try {
      await client.query(await readFile(path.join(dir, name), 'utf8'));
    } catch (error) {
      throw new Error(`migrations/functions/${name}: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** The names of the migrations a database has, or null when it has none yet. */
export async function appliedMigrations(
  query: (sql: string) => Promise<{ rows: { name: string }[] }>,
): Promise<string[] | null> {
  try {
    const { rows } = await query(`select name from ${migrationsTable} order by run_on, id`);
    return rows.map((r) => r.name);
  } catch (error) {
    // 42P01: undefined table - nothing was ever migrated here.
    if ((error as { code?: string }).code === '42P01') return null;
    throw error;
  }
}
