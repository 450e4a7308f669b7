import { knownMigrations } from '../../src/app.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { migrate } from '../../src/persistence/migrate.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.query(`insert into products (sku, name, initial_stock, total, version, created_at, updated_at)
                      values ('S-1', 'Row', 10, 10, 1, now(), now())`);
  await db.sql.query(`insert into inventory_events (sku, seq, type, source, total, reserved, purchased, at, hash)
                      values ('S-1', 1, 'product_created', 'api', 10, 0, 0, now(), 'h')`);
});
afterAll(async () => {
  await db?.drop();
});

async function refusal(sql: string): Promise<string> {
  try {
    await db.sql.query(sql);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`the database accepted: ${sql}`);
}

describe('the database is the last line of defence', () => {
  it('G1: a CHECK constraint refuses an oversold row written directly in SQL', async () => {
    expect(await refusal(`update products set reserved = 6, purchased = 5 where sku = 'S-1'`)).toMatch(
      /products_g1_no_overselling/,
    );
  });

  it('G3: CHECK constraints refuse negative counters written directly in SQL', async () => {
    expect(await refusal(`update products set reserved = -1 where sku = 'S-1'`)).toMatch(
      /products_g3_reserved_nonnegative/,
    );
    expect(await refusal(`update products set purchased = -1 where sku = 'S-1'`)).toMatch(
      /products_g3_purchased_nonnegative/,
    );
    expect(await refusal(`update products set total = -1 where sku = 'S-1'`)).toMatch(
      /products_g3_total_nonnegative|products_g1/,
    );
  });

  it('G7: the audit table refuses UPDATE, DELETE and TRUNCATE', async () => {
    expect(await refusal(`update inventory_events set total = 99 where sku = 'S-1'`)).toMatch(
      /append-only: UPDATE refused/,
    );
    expect(await refusal(`delete from inventory_events where sku = 'S-1'`)).toMatch(/append-only: DELETE refused/);
    expect(await refusal(`truncate inventory_events cascade`)).toMatch(/append-only: TRUNCATE refused/);
    const { rows } = await db.sql.query(
      `select count(*)::int as n, max(total)::int as total from inventory_events where sku = 'S-1'`,
    );
    expect(rows[0]).toEqual({ n: 1, total: 10 });
  });

  it('a reservation status outside the lifecycle is refused', async () => {
    expect(
      await refusal(`insert into reservations (id, sku, quantity, status, created_at, expires_at, finished_at)
                          values (gen_random_uuid(), 'S-1', 1, 'lost', now(), now() + interval '1 minute', now())`),
    ).toMatch(/reservations_status_known/);
  });

  it('migration installs schema; a second migration does no harm', async () => {
    const quiet = { info: () => {}, warn: () => {}, error: () => {} };
    const before = await db.sql.query(`select count(*)::int as n from secventory_migrations`);
    expect(await migrate(db.url, quiet)).toEqual([]);
    expect(await migrate(db.url, quiet)).toEqual([]);
    const after = await db.sql.query(`select count(*)::int as n from secventory_migrations`);
    expect(after.rows[0].n).toBe(before.rows[0].n);
    const { rows } = await db.sql.query(`select count(*)::int as n from products`);
    expect(rows[0].n).toBe(1);
  });

  it('migrations started by several instances at once apply exactly once (advisory lock)', async () => {
    const fresh = await createTestDatabase();
    try {
      // Start from an empty database: drop what the template gave it.
      await fresh.sql.query(`drop schema public cascade; create schema public;`);
      const quiet = { info: () => {}, warn: () => {}, error: () => {} };
      const results = await Promise.all([
        migrate(fresh.url, quiet),
        migrate(fresh.url, quiet),
        migrate(fresh.url, quiet),
      ]);
      expect(results.flat().sort()).toEqual(knownMigrations());
      const { rows } = await fresh.sql.query(`select count(*)::int as n from secventory_migrations`);
      expect(rows[0].n).toBe(knownMigrations().length);
    } finally {
      await fresh.drop();
    }
  });
});
