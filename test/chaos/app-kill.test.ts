import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import {
  AppProcess, ChaosClient, type ChaosDatabase, chaosRounds, expectAcknowledgedDurable, expectDatabaseConsistent,
  expectExactlyOnce, finalAnswers, isFinal, report, startLoad, testPool, type AppEnv,
  startChaosDatabase,
} from '../support/chaos.ts';
import { waitUntil } from '../support/database.ts';

// The app is SIGKILLed - no shutdown hook, no draining - while clients reserve and purchase.
// Whatever it had answered must be in the database; whatever it had not answered may or may not
// have committed, and the clients' retries with the same keys must make each take effect once.

let db: ChaosDatabase;
let app: AppProcess;
let port: number;
let env: AppEnv;
let client: ChaosClient;
let sql: pg.Pool;
const skus = ['KILL-A', 'KILL-B', 'KILL-C', 'EXPIRE-APP'];

beforeAll(async () => {
  db = await startChaosDatabase();
  port = await freePort();
  env = { DATABASE_URL: db.url };
  app = await AppProcess.start(env, port);
  client = new ChaosClient(app.url);
  sql = testPool(db.url);
  for (const sku of skus) await client.createProduct(sku, 1_000_000);
}, 90_000);

afterAll(async () => {
  await app?.kill();
  await client?.close();
  await sql?.end();
  await db?.destroy();
}, 30_000);

describe('the app SIGKILLed during a reserve/purchase load, then restarted', () => {
  beforeAll(async () => {
    let inDoubt = 0;
    let committedUnanswered = 0;
    for (let round = 0; round < chaosRounds; round++) {
      const load = startLoad(client, {
        workers: 24,
        prefix: `r${round}`,
        next: (w, i) => ({ kind: 'reserve', sku: skus[(w + i) % 3]!, key: `r${round}-${w}-${i}`, quantity: 1 + (i % 3), ttlSeconds: 600 }),
        then: (r, w, i) => ((w + i) % 2 === 0 ? { kind: 'purchase', sku: r.sku, key: `buy-${r.id}`, reservationId: r.id } : null),
      });
      const answeredBefore = finalAnswers(client);
      await waitUntil(() => finalAnswers(client) >= answeredBefore + 300, 20_000, '300 answered requests before the kill');
      const pid = app.pid;
      await app.kill();
      await load.stop();
      const open = client.attempted.filter((e) => !e.answers.some(isFinal));
      inDoubt += open.length;

      const restartedMs = performance.now();
      app = await AppProcess.start(env, port);
      expect(app.pid).not.toBe(pid);
      const restartMs = performance.now() - restartedMs;
      await client.retryUnanswered();
      // An unanswered request replayed on retry had committed before the kill (in doubt, then kept).
      committedUnanswered += open.filter((e) => e.answers.find(isFinal)?.replayed === true).length;
      report('app SIGKILL', { round, inFlightAtKill: open.length, restartMs });
    }
    report('app SIGKILL', { requests: client.attempted.length, inDoubt, committedButUnanswered: committedUnanswered });
  }, 120_000);

  it('G5: every acknowledged reservation and purchase survives an app SIGKILL', async () => {
    expect(await expectAcknowledgedDurable(sql, client.attempted)).toBeGreaterThan(300);
  });

  it('G2: requests retried with their keys after the restart take effect exactly once', async () => {
    await expectExactlyOnce(sql, client.attempted, skus);
  });

  it('G1 G3 G4 G7: counters equal the sums over reservation rows, events replay to them, and verify finds nothing', async () => {
    await expectDatabaseConsistent(db.url, sql);
  });
});

describe('reservations that expire while the app is down', () => {
  const sku = 'EXPIRE-APP';
  let shortIds: string[] = [];
  let longIds: string[] = [];
  let reconcileMs = 0;

  beforeAll(async () => {
    const short = await Promise.all([1, 2, 3, 4, 5].map((n) => client.reserve(sku, n, 1, `short-${n}`)));
    const long = await Promise.all([1, 2].map((n) => client.reserve(sku, n, 600, `long-${n}`)));
    shortIds = short.map((e) => e.answers[0]!.body.id);
    longIds = long.map((e) => e.answers[0]!.body.id);
    const expiresAtMs = Math.max(...short.map((e) => Date.parse(e.answers[0]!.body.expiresAt)));
    await app.kill();
    await waitUntil(() => Date.now() > expiresAtMs + 500, 5_000, 'the short reservations expired while the app was down');
    const { rows } = await sql.query(`select count(*)::int as n from reservations where id = any($1::uuid[]) and status = 'active'`, [shortIds]);
    expect(rows[0].n, 'nobody was there to expire them').toBe(shortIds.length);

    const startedMs = performance.now();
    app = await AppProcess.start(env, port);
    await waitUntil(async () => {
      const { rows: [r] } = await sql.query(`select count(*)::int as n from reservations where id = any($1::uuid[]) and status = 'expired'`, [shortIds]);
      return r.n === shortIds.length;
    }, 10_000, 'the restarted app expired them');
    reconcileMs = performance.now() - startedMs;
    report('expiry while the app is down', { reconcileMsIncludingAppStart: reconcileMs });
  }, 60_000);

  it('G6: reservations that expired while the app was down are expired by the restarted app, and their stock is available again', async () => {
    const { rows } = await sql.query(`select id::text, status from reservations where sku = $1`, [sku]);
    const status = new Map(rows.map((r) => [r.id, r.status]));
    for (const id of shortIds) expect(status.get(id)).toBe('expired');
    for (const id of longIds) expect(status.get(id)).toBe('active');
    const inventory = await client.http('GET', `/products/${sku}/inventory`);
    expect(inventory.body).toMatchObject({ reserved: 1 + 2, activeReservations: 2 });
    const { rows: events } = await sql.query(
      `select source, late_ms::float8 from inventory_events where type = 'expired' and reservation_id = any($1::uuid[])`, [shortIds]);
    expect(events).toHaveLength(shortIds.length);
    for (const e of events) {
      expect(e.source).toBe('sweeper');
      expect(e.late_ms).toBeGreaterThan(0);
    }
  });

  it('G5 G1 G3 G4 G7: every acknowledged reservation is there and the database is consistent', async () => {
    await expectAcknowledgedDurable(sql, client.attempted);
    await expectDatabaseConsistent(db.url, sql);
  });
});
