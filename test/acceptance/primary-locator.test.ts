import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import { parseDatabaseUrl } from '../../src/persistence/multi-host.ts';
import { openPool, PrimaryLocator, type LocatorEvent } from '../../src/persistence/primary-locator.ts';
import { locate, primaryUrl, probeHost } from '../../src/persistence/primary-search.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';

// The locator over the test run's real PostgreSQL: the order it tries hosts in, which servers each
// target_session_attrs takes, and that a write refused as read-only sends it looking again. Following
// a primary that moves to another server is proven with pg_auto_failover in test/chaos/failover.test.ts.

const settings = {
  poolSize: 2,
  connectionAcquireTimeoutMs: 2_000,
  statementTimeoutMs: 2_000,
  queryTimeoutMs: 3_000,
  idleInTransactionTimeoutMs: 5_000,
};

let db: TestDatabase;
/** A second database of the same server whose sessions refuse writes, as a standby's would. */
let readOnlyUrl = '';
/** A loopback port nothing listens on. */
let closedPort = 0;

/** The test database's URL with `hosts` (host:port, comma-separated) and a query string. */
function withHosts(url: string, hosts: string, query: string): string {
  const { username, password, pathname } = new URL(url);
  return `postgres://${username}:${password}@${hosts}${pathname}${query}`;
}

const serverOf = (url: string) => new URL(url).host;

beforeAll(async () => {
  db = await createTestDatabase();
  closedPort = await freePort();
  const readOnly = `${db.name}_ro`;
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    await admin.query(`create database ${readOnly}`);
    await admin.query(`alter database ${readOnly} set default_transaction_read_only = on`);
  } finally {
    await admin.end();
  }
  readOnlyUrl = db.url.replace(`/${db.name}`, `/${readOnly}`);
});

afterAll(async () => {
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  await admin.query(`drop database if exists ${db.name}_ro with (force)`);
  await admin.end();
  await db.drop();
});

describe('finding the server DATABASE_URL asks for', () => {
  it('takes the first host in order that is read-write: a host that refuses connections is passed over', async () => {
    const url = withHosts(db.url, `127.0.0.1:${closedPort},${serverOf(db.url)}`, '?target_session_attrs=read-write');
    const search = await locate(parseDatabaseUrl(url), { roundsMax: 1 });
    expect(search).toMatchObject({ kind: 'found', host: { port: Number(new URL(db.url).port) }, rounds: 1 });
    expect(await primaryUrl(url, { roundsMax: 1 })).toBe(withHosts(db.url, serverOf(db.url), ''));
  });

  it('read-write passes over a server that refuses writes; primary and any take it (as libpq does)', async () => {
    expect(await probeHost(readOnlyUrl, 'read-write')).toEqual({ kind: 'refused', why: 'read-only' });
    expect(await probeHost(readOnlyUrl, 'primary')).toEqual({ kind: 'accepted' });
    expect(await probeHost(readOnlyUrl, 'any')).toEqual({ kind: 'accepted' });
    expect(await probeHost(db.url, 'read-write')).toEqual({ kind: 'accepted' });
  });

  it('no host being read-write is one error naming each host and why it was passed over', async () => {
    const url = withHosts(
      readOnlyUrl,
      `127.0.0.1:${closedPort},${serverOf(db.url)}`,
      '?target_session_attrs=read-write',
    );
    const failure = await primaryUrl(url, { roundsMax: 2 }).catch((error: Error) => error);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(
      new RegExp(
        `^no host of DATABASE_URL is read-write: 127\\.0\\.0\\.1:${closedPort} .*ECONNREFUSED.*; .* read-only$`,
      ),
    );
  });
});

describe('the pool the service queries through', () => {
  it('one plain host: the pg.Pool itself, with nothing in between on the hot path', async () => {
    const opened = await openPool(
      db.url,
      settings,
      () => {},
      () => {},
    );
    try {
      expect(opened.pool).toBeInstanceOf(pg.Pool);
      expect(opened.url()).toBe(db.url);
    } finally {
      await opened.end();
    }
  });

  it('several hosts: a PrimaryLocator serving queries on the primary it found', async () => {
    const url = withHosts(db.url, `127.0.0.1:${closedPort},${serverOf(db.url)}`, '?target_session_attrs=read-write');
    const opened = await openPool(
      url,
      settings,
      () => {},
      () => {},
    );
    try {
      expect(opened.pool).toBeInstanceOf(PrimaryLocator);
      const { rows } = await opened.pool.query<{ n: number }>('select 1 as n');
      expect(rows).toEqual([{ n: 1 }]);
      expect(opened.url()).toBe(withHosts(db.url, serverOf(db.url), ''));
    } finally {
      await opened.end();
    }
  });

  it('a write refused as read-only (25006) reaches its caller and sends the locator looking again', async () => {
    // primary takes a server out of recovery even when its sessions refuse writes: the write fails.
    const url = withHosts(readOnlyUrl, serverOf(readOnlyUrl), '?target_session_attrs=primary');
    const events: LocatorEvent[] = [];
    const locator = await PrimaryLocator.start(
      parseDatabaseUrl(url),
      settings,
      (e) => events.push(e),
      () => {},
    );
    try {
      const refused = await locator.query('create table refused (n int)').catch((error: { code?: string }) => error);
      expect(refused).toMatchObject({ code: '25006' });
      await waitUntil(() => events.some((e) => e.type === 'stayed'), 10_000, 'the search ended');
      expect(events.map((e) => e.type)).toEqual(['searching', 'stayed']);
      expect(events[0]).toMatchObject({ reason: 'a write was refused: the server is read-only' });
    } finally {
      await locator.end();
    }
  });

  it('a failure the server answered (division by zero) says nothing of where the primary is: no search', async () => {
    const url = withHosts(db.url, serverOf(db.url), '?target_session_attrs=read-write');
    const events: LocatorEvent[] = [];
    const locator = await PrimaryLocator.start(
      parseDatabaseUrl(url),
      settings,
      (e) => events.push(e),
      () => {},
    );
    try {
      const failed = await locator.query('select 1 / 0').catch((error: { code?: string }) => error);
      expect(failed).toMatchObject({ code: '22012' });
      expect(events).toEqual([]);
    } finally {
      await locator.end();
    }
  });
});
