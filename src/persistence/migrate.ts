import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';

export const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));
export const migrationsTable = 'secventory_migrations';

export interface MigrationLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/**
 * Applies the numbered plain-SQL files of migrations/ in order, each exactly once, all pending
 * ones in one transaction. node-pg-migrate holds an advisory lock while it runs, and with
 * 'wait' several instances starting together queue up instead of failing.
 */
export async function migrate(databaseUrl: string, log: MigrationLog): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: migrationsDir,
    migrationsTable,
    direction: 'up',
    checkOrder: true,
    singleTransaction: true,
    advisoryLockMode: 'wait',
    logger: { info: (m) => log.info(m), warn: (m) => log.warn(m), error: (m) => log.error(m), debug: () => {} },
  });
  return applied.map((m) => m.name);
}

/** The names of the migrations a database has, or null when it has none yet. */
export async function appliedMigrations(query: (sql: string) => Promise<{ rows: { name: string }[] }>): Promise<string[] | null> {
  try {
    const { rows } = await query(`select name from ${migrationsTable} order by run_on, id`);
    return rows.map((r) => r.name);
  } catch (error) {
    // 42P01: undefined table - nothing was ever migrated here.
    if ((error as { code?: string }).code === '42P01') return null;
    throw error;
  }
}
