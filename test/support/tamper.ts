import { expect } from 'vitest';
import type { TestDatabase } from './database.ts';

/**
 * Runs SQL on a test's database with the audit log's append-only trigger off, as an operator with
 * table rights could: how the tests of the checkers break a database on purpose. The statement
 * must change at least one row, or the test would check nothing.
 */
export async function tamper(db: TestDatabase, statement: string, values: unknown[] = []): Promise<void> {
  const client = await db.sql.connect();
  try {
    await client.query('alter table inventory_events disable trigger user');
    const result = await client.query(statement, values);
    expect(result.rowCount, statement).toBeGreaterThan(0);
  } finally {
    await client.query('alter table inventory_events enable trigger user');
    client.release();
  }
}
