import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

const templateDatabase = 'secventory_template';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** A small pool for the test's own SQL checks. */
  readonly sql: pg.Pool;
  drop(): Promise<void>;
}

function urlOf(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A fresh, migrated database for one test file, copied from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // Copies of one template can clash when started at the same moment; retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`create database ${name} template ${templateDatabase}`);
        break;
      } catch (error) {
        if (attempt >= 20) throw error;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  } finally {
    await admin.end();
  }
  const url = urlOf(adminUrl, name);
  const sql = new pg.Pool({ connectionString: url, max: 4 });
  sql.on('error', () => {});
  return {
    url,
    name,
    sql,
    drop: async () => {
      await sql.end();
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export { waitUntil } from '../../scripts/lib/wait.ts';
