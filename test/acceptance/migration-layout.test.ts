import { readdirSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PG_MIGRATE_LOCK_ID, runner } from 'node-pg-migrate';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, migrationsDir, migrationsTable } from '../../src/persistence/migrate.ts';
import { schemaDumpOf } from '../../scripts/lib/schema-dump.ts';
import { waitUntil } from '../support/database.ts';
import { createEmptyDatabase, type EmptyDatabase } from '../support/empty-database.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * migrations/ as it was at commit d49035b, before functions/ existed: 0002 and 0003 each created
 * secventory_commit_batches in full. Databases in service were migrated with these files.
 */
const oldLayoutDir = fileURLToPath(new URL('../fixtures/migrations-d49035b', import.meta.url));
/** Every numbered migration of this build: the old layout's and those written since. */
const currentLayout = readdirSync(migrationsDir)
  .filter((f) => /^\d{4}_.*\.sql$/.test(f))
  .map((f) => f.replace(/\.sql$/, ''))
  .sort();

/** The runner as src/persistence/migrate.ts called it then, stopping after the first `count` files. */
async function migrateWithOldRunner(databaseUrl: string, count: number): Promise<void> {
  await runner({
    databaseUrl,
    dir: oldLayoutDir,
    migrationsTable,
    direction: 'up',
    count,
    checkOrder: true,
    singleTransaction: true,
    advisoryLockMode: 'wait',
    logger: { ...quiet, debug: () => {} },
  });
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

let freshDump: string;
beforeAll(async () => {
  const fresh = await createEmptyDatabase();
  try {
    await migrate(fresh.url, quiet);
    freshDump = await schemaDumpOf(fresh.url);
  } finally {
    await fresh.drop();
  }
});

describe('databases migrated before migrations/functions/ existed', () => {
  let db: EmptyDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
  });

  it.each([1, 2, 3])("a database with the first %i old migrations ends with a fresh one's schema", async (count) => {
    db = await createEmptyDatabase();
    await migrateWithOldRunner(db.url, count);
    expect(await migrate(db.url, quiet)).toEqual(currentLayout.slice(count));
    expect(await schemaDumpOf(db.url)).toBe(freshDump);
    const names = await withClient(db.url, (c) => c.query(`select name from ${migrationsTable} order by id`));
    expect(names.rows.map((r) => r.name)).toEqual(currentLayout);
    await db.drop();
    db = undefined;
  });
});

describe('migrations/functions/', () => {
  it('every migrate applies the current definitions again: a function changed by hand is restored', async () => {
    const db = await createEmptyDatabase();
    try {
      await migrate(db.url, quiet);
      await withClient(db.url, async (c) => {
        await c.query(`create or replace function inventory_events_refuse_change() returns trigger
                       language plpgsql as $$ begin return old; end $$`);
      });
      expect(await schemaDumpOf(db.url)).not.toBe(freshDump);
      expect(await migrate(db.url, quiet)).toEqual([]);
      expect(await schemaDumpOf(db.url)).toBe(freshDump);
    } finally {
      await db.drop();
    }
  });

  it("are applied in the numbered migrations' transaction: when one fails, nothing is applied", async () => {
    const db = await createEmptyDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'secventory-migrations-'));
    try {
      await cp(migrationsDir, dir, { recursive: true });
      // An SQL-language body is checked at creation: the column does not exist.
      await writeFile(
        path.join(dir, 'functions', 'zz_broken.sql'),
        `CREATE OR REPLACE FUNCTION zz_broken() RETURNS bigint LANGUAGE sql AS 'SELECT no_such_column FROM products';`,
      );
      await expect(migrate(db.url, quiet, dir)).rejects.toThrow(/functions\/zz_broken\.sql: .*no_such_column/);
      const { rows } = await withClient(db.url, (c) =>
        c.query(`select to_regclass('products') as products, to_regclass('${migrationsTable}') as migrations`),
      );
      expect(rows[0]).toEqual({ products: null, migrations: null });
    } finally {
      await rm(dir, { recursive: true, force: true });
      await db.drop();
    }
  });

  it("migrate waits for the advisory lock an older build's runner takes, and then migrates", async () => {
    const db = await createEmptyDatabase();
    const olderBuild = new pg.Client({ connectionString: db.url });
    await olderBuild.connect();
    try {
      // What node-pg-migrate's runner does first when an older build migrates.
      await olderBuild.query(`select pg_advisory_lock(${PG_MIGRATE_LOCK_ID})`);
      const migrating = migrate(db.url, quiet);
      await waitUntil(
        async () => {
          const { rows } = await olderBuild.query(`select count(*)::int as n from pg_locks
                                                  where locktype = 'advisory' and not granted
                                                    and database = (select oid from pg_database
                                                                     where datname = current_database())`);
          return rows[0].n === 1;
        },
        10_000,
        'migrate waiting for the advisory lock',
      );
      await olderBuild.query(`select pg_advisory_unlock(${PG_MIGRATE_LOCK_ID})`);
      expect(await migrating).toEqual(currentLayout);
    } finally {
      await olderBuild.end();
      await db.drop();
    }
  });
});
