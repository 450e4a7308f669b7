import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitParameters } from '../../src/persistence/commit-columns.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

// The TypeScript side of the commit and the SQL function must agree on every parameter: its name,
// its type and its place. The statement names each parameter, so a disagreement also fails at the
// first commit; this test says which parameter it is.

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('the commit interface', () => {
  it('declares exactly the parameters of secventory_commit_batches, in order, with their types', async () => {
    const { rows } = await db.sql.query<{ name: string; type: string }>(`
      select a.name, format_type(a.type, null) as type
        from pg_proc p,
             unnest(p.proargnames, p.proargtypes::oid[]) with ordinality as a (name, type, n)
       where p.proname = 'secventory_commit_batches'
       order by a.n`);
    expect(rows.length).toBeGreaterThan(0);
    expect(commitParameters).toEqual(rows);
  });

  it('has one overload only, so a call can never pick a stale definition', async () => {
    const { rows } = await db.sql.query(
      `select count(*)::int as n from pg_proc where proname = 'secventory_commit_batches'`,
    );
    expect(rows[0].n).toBe(1);
  });
});
