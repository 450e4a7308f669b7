import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { createPool, inTransaction } from '../../src/persistence/database.ts';
import { committedUnacknowledged, startLoad } from '../../scripts/lib/request-accounting.ts';
import { sleep, waitUntil } from '../../scripts/lib/wait.ts';
import {
  chaosRigFor,
  chaosRounds,
  itKeepsTheGuarantees,
  report,
  retryWithinMs,
  shortTimeouts,
} from '../support/chaos.ts';

// An operator (or a failover, or a connection pooler) terminates the app's backends with
// pg_terminate_backend while clients reserve and purchase: a batch may die before, during or
// after its COMMIT. The app answers 503 for what it cannot confirm, keeps serving, and the
// clients' retries with the same keys take effect once.

const skus = ['TERM-A', 'TERM-B', 'TERM-C'];
// A small pool, so requests often wait for a connection: a terminated backend then also meets
// the moment its client is handed from one request to the next.
const rig = chaosRigFor((databaseUrl) => ({ ...shortTimeouts(databaseUrl), SECVENTORY_POOL_SIZE: '4' }), skus);
const terminatingMs = 2_500;
const terminateEveryMs = 100;

describe('backends terminated with pg_terminate_backend during a reserve/purchase load', () => {
  let terminated = 0;
  let servedWhileTerminating = 0;
  /** The app's last words each time it died; it is restarted (as a supervisor would) to go on. */
  const crashes: string[] = [];

  beforeAll(async () => {
    const { log } = rig();
    const admin = new pg.Client({ connectionString: rig().db.adminUrl });
    await admin.connect();
    try {
      for (let round = 0; round < chaosRounds; round++) {
        const load = startLoad(log, {
          workers: 16,
          next: (w, i) => ({
            kind: 'reserve',
            sku: skus[(w + i) % 3]!,
            key: `tb${round}-${w}-${i}`,
            quantity: 1 + (i % 2),
            ttlSeconds: 600,
          }),
          then: (r, w) =>
            w % 3 === 0
              ? null
              : { kind: w % 3 === 1 ? 'purchase' : 'cancel', sku: r.sku, key: `fin-${r.id}`, reservationId: r.id },
        });
        const answeredBefore = log.finalCount();
        await waitUntil(() => log.finalCount() >= answeredBefore + 50, 20_000, 'requests under way');
        const servedBefore = log.finalCount();
        const stopAtMs = Date.now() + terminatingMs;
        while (Date.now() < stopAtMs) {
          const { rows } = await admin.query(
            `select count(*) filter (where pg_terminate_backend(pid))::int as n
               from pg_stat_activity where application_name = 'secventory' and pid <> pg_backend_pid()`,
          );
          terminated += rows[0].n;
          await sleep(terminateEveryMs);
        }
        servedWhileTerminating += log.finalCount() - servedBefore;
        await load.stop();
        if (!rig().app.running) {
          crashes.push(
            rig()
              .app.recentOutput()
              .split('\n')
              .filter((l) => l.includes('"level":50') || l.includes('"level":60') || l.includes('HOOK'))
              .join('\n'),
          );
          await rig().restartApp();
        }
        const retried = await log.retryOpen(retryWithinMs);
        const committedBut503 = committedUnacknowledged(retried);
        const status503 = log.answers().filter((a) => a.status === 503).length;
        report('pg_terminate_backend', {
          round,
          backendsTerminated: terminated,
          servedWhileTerminating,
          answered503: status503,
          retried: retried.length,
          committedBut503,
          appCrashes: crashes.length,
        });
      }
    } finally {
      await admin.end();
    }
  }, 120_000);

  it('the app keeps serving while its backends are terminated under it: it never dies, and what it cannot confirm is a 503', () => {
    expect(terminated).toBeGreaterThan(0);
    expect(servedWhileTerminating).toBeGreaterThan(0);
    expect(crashes, 'the app process died').toEqual([]);
    // What it could not confirm it answered 503 storage_unavailable, never 500.
    const failures = rig()
      .log.answers()
      .filter((a) => a.status !== null && a.status >= 500);
    for (const a of failures)
      expect({ status: a.status, code: a.body?.code }).toEqual({ status: 503, code: 'storage_unavailable' });
  });

  itKeepsTheGuarantees(rig, skus, 'terminated backends');
});

describe('a backend terminated between two statements of a transaction', () => {
  // The minimal form of what the load above runs into. While a pool client is checked out (as in
  // inTransaction, which loadProduct uses) and has no query running, pg reports a connection
  // error as an 'error' event on the client; pg-pool listens for it only while the client is idle
  // in the pool. Nobody listening, the event is an uncaught exception, which stops the app.
  it('fails that transaction, and nothing escapes as an uncaught exception that would stop the app', async () => {
    const pool = createPool(
      {
        connectionString: rig().db.url,
        poolSize: 1,
        connectionAcquireTimeoutMs: 5_000,
        statementTimeoutMs: 5_000,
        queryTimeoutMs: 5_000,
        idleInTransactionTimeoutMs: 10_000,
      },
      () => {},
    );
    const admin = new pg.Client({ connectionString: rig().db.adminUrl });
    await admin.connect();
    const uncaught: Error[] = [];
    const onUncaught = (error: Error) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const transaction = inTransaction(pool, 'begin', async (c) => {
        const {
          rows: [{ pid }],
        } = await c.query('select pg_backend_pid() as pid');
        await admin.query('select pg_terminate_backend($1)', [pid]);
        // The backend's FATAL arrives while this client is checked out with no query running.
        await sleep(300);
        await c.query('select 1');
      });
      await expect(transaction).rejects.toThrow();
      expect(uncaught.map((e) => e.message)).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await admin.end();
      await pool.end();
    }
  });

  it('a connection error that arrives while a pooled client is being handed to a waiting transaction is not an uncaught exception', async () => {
    // The same event at the moment of the hand-over. A terminated backend's FATAL often arrives in
    // the same TCP read as the ReadyForQuery before it: pg completes the query, pg-pool releases the
    // client and at once hands it to the next waiter (removing its idle 'error' listener), and only
    // then parses the FATAL - before the waiter's `await pool.connect()` has resumed to add its own.
    // Emitting the error right after release() is that sequence without the network timing.
    const pool = createPool(
      {
        connectionString: rig().db.url,
        poolSize: 1,
        connectionAcquireTimeoutMs: 5_000,
        statementTimeoutMs: 5_000,
        queryTimeoutMs: 5_000,
        idleInTransactionTimeoutMs: 10_000,
      },
      () => {},
    );
    try {
      const first = await pool.connect();
      const waiting = inTransaction(pool, 'begin', async (c) => c.query('select 1'));
      first.release();
      expect(() => first.emit('error', new Error('terminating connection due to administrator command'))).not.toThrow();
      await waiting.then(
        () => undefined,
        () => undefined,
      );
    } finally {
      await pool.end();
    }
  });
});
