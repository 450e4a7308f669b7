import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/persistence/migrate.ts';
import { schemaDumpFile, schemaDumpOf } from '../../scripts/lib/schema-dump.ts';
import { createEmptyDatabase, type EmptyDatabase } from '../support/empty-database.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

let db: EmptyDatabase;
beforeAll(async () => {
  db = await createEmptyDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('the committed schema dump', () => {
  it('migrations/dump/schema.sql is exactly the schema of a freshly migrated database', async () => {
    await migrate(db.url, quiet);
    const fresh = await schemaDumpOf(db.url);
    const committed = await readFile(schemaDumpFile, 'utf8');
    // A string comparison: vitest shows the difference line by line.
    expect(fresh, 'the migrations changed the schema: review the difference, then run `npm run schema:dump`').toBe(
      committed,
    );
  });
});
