// npm run schema:dump
// Writes migrations/dump/schema.sql: migrates a new, empty database and dumps its schema from the
// catalogs (scripts/lib/schema-dump.ts). Run it after changing a migration or a function, and review
// the difference with git diff. Uses its own embedded PostgreSQL (fsync off: the data is thrown away)
// unless DATABASE_URL names a server, on which it creates and drops its own database.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { EmbeddedServer } from '../src/persistence/embedded-postgres.ts';
import { migrate } from '../src/persistence/migrate.ts';
import { schemaDumpFile, schemaDumpOf } from './lib/schema-dump.ts';

const databaseName = 'secventory_schema_dump';
const quiet = { info: () => {}, warn: console.warn, error: console.error };

async function dumpFreshlyMigrated(adminUrl: string): Promise<string> {
  const url = new URL(adminUrl);
  url.pathname = `/${databaseName}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${databaseName} with (force)`);
    await admin.query(`create database ${databaseName}`);
    await migrate(url.toString(), quiet);
    return await schemaDumpOf(url.toString());
  } finally {
    await admin.query(`drop database if exists ${databaseName} with (force)`);
    await admin.end();
  }
}

async function main(): Promise<void> {
  let embedded: EmbeddedServer | undefined;
  let tmp: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  try {
    if (adminUrl === undefined || adminUrl === '') {
      tmp = await mkdtemp(path.join(os.tmpdir(), 'secventory-schema-dump-'));
      // As root, PostgreSQL runs as a created user that must reach the directory.
      await chmod(tmp, 0o755);
      embedded = new EmbeddedServer({ dataDir: path.join(tmp, 'pg'), settings: { fsync: 'off' } });
      await embedded.start();
      adminUrl = embedded.url;
    }
    const dump = await dumpFreshlyMigrated(adminUrl);
    await writeFile(schemaDumpFile, dump);
    console.log(`wrote ${path.relative(process.cwd(), fileURLToPath(schemaDumpFile))}`);
  } finally {
    await embedded?.stop();
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  }
}

await main();
