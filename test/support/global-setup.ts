import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { EmbeddedServer } from '../../src/persistence/embedded-postgres.ts';
import { migrate } from '../../src/persistence/migrate.ts';

export const templateDatabase = 'secventory_template';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL of the test run's PostgreSQL (database `postgres`). */
    adminUrl: string;
  }
}

async function startServer(): Promise<{ adminUrl: string; stop: () => Promise<void> }> {
  if (process.env.TEST_DATABASE_URL) {
    return { adminUrl: process.env.TEST_DATABASE_URL, stop: async () => {} };
  }
  if (process.env.SECVENTORY_TEST_DB === 'testcontainers') {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:18').start();
    return { adminUrl: container.getConnectionUri(), stop: async () => void (await container.stop()) };
  }
  // /tmp, not a 0700 folder: as root, PostgreSQL runs as a created user that must reach it.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'secventory-test-'));
  await import('node:fs/promises').then((fs) => fs.chmod(dir, 0o755));
  // fsync off: these servers are thrown away, and killing PostgreSQL (not the machine) loses
  // nothing that was written to the OS. Chaos tests start their own servers with fsync on.
  const server = new EmbeddedServer({
    dataDir: path.join(dir, 'pg'),
    settings: { fsync: 'off', max_connections: '500' },
  });
  await server.start();
  return {
    adminUrl: server.url,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One PostgreSQL per test run, with a migrated template database that each file copies. */
export default async function setup(project: TestProject) {
  const { adminUrl, stop } = await startServer();
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${templateDatabase}`);
  await admin.query(`create database ${templateDatabase}`);
  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${templateDatabase}`;
  const quiet = { info: () => {}, warn: () => {}, error: (m: string) => console.error(m) };
  await migrate(templateUrl.toString(), quiet);
  await admin.end();
  project.provide('adminUrl', adminUrl);
  return stop;
}
