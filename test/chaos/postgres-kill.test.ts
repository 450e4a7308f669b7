import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import {
  AppProcess, ChaosClient, type ChaosDatabase, chaosRounds, expectAcknowledgedDurable, expectDatabaseConsistent,
  expectExactlyOnce, finalAnswers, isFinal, report, shortTimeouts, sleep, startLoad, testPool, type Answer,
  startChaosDatabase,
} from '../support/chaos.ts';
import { waitUntil } from '../support/database.ts';

// PostgreSQL is SIGKILLed - the postmaster and every backend at once, as in a crash - while
// clients purchase. The app must answer 503 quickly while it is gone, recover by itself when it
// is back (the same app process, no restart), and the clients' retries must take effect once.

let db: ChaosDatabase;
let app: AppProcess;
let client: ChaosClient;
let sql: pg.Pool;
const skus = ['PGKILL-A', 'PGKILL-B', 'EXPIRE-PG'];
/** With 1.5 s query and statement timeouts and a 1 s connection timeout (see shortTimeouts). */
const answerWithinMs = 5_000;
const recoverWithinMs = 10_000;

beforeAll(async () => {
  db = await startChaosDatabase();
  app = await AppProcess.start(shortTimeouts(db.url), await freePort());
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

/** Retries a probe reserve until it is answered 201; returns how long that took. */
async function recovered(key: string): Promise<number> {
  const startedMs = performance.now();
  const entry = client.start({ kind: 'reserve', sku: 'PGKILL-A', key, quantity: 1, ttlSeconds: 600 });
  await waitUntil(async () => (await client.send(entry)).status === 201, recoverWithinMs, 'the app served a reservation again');
  return performance.now() - startedMs;
}

describe('PostgreSQL SIGKILLed mid-purchase, then restarted on the same data directory', () => {
  /** Answers to requests in flight at the kill or sent while PostgreSQL was down. */
  const duringOutage: Answer[] = [];
  let appPid = 0;

  beforeAll(async () => {
    appPid = app.pid;
    for (let round = 0; round < chaosRounds; round++) {
      // Reservations to purchase, acknowledged before anything goes wrong.
      const toPurchase = await Promise.all(Array.from({ length: 200 }, (_, i) =>
        client.reserve(skus[i % 2]!, 1, 600, `pre-${round}-${i}`).then((e) => e.answers[0]!.body as { id: string; sku: string })));
      let next = 0;
      const load = startLoad(client, {
        workers: 16,
        prefix: `pk${round}`,
        next: (w, i) => {
          const r = toPurchase[next++];
          return r === undefined
            ? { kind: 'reserve', sku: skus[i % 2]!, key: `pk${round}-${w}-${i}`, quantity: 1, ttlSeconds: 600 }
            : { kind: 'purchase', sku: r.sku, key: `buy-${r.id}`, reservationId: r.id };
        },
      });
      const answeredBefore = finalAnswers(client);
      await waitUntil(() => finalAnswers(client) >= answeredBefore + 60, 20_000, 'purchases under way before the kill');

      const killedAtMs = Date.now();
      const pids = await db.kill();
      // Keep the clients coming while PostgreSQL is down.
      await sleep(2_000);
      const restartAtMs = Date.now();
      await db.restart();
      const restartMs = Date.now() - restartAtMs;
      const recoveryMs = await recovered(`probe-${round}`);
      await load.stop();
      const thisOutage = client.attempted.flatMap((e) => e.answers)
        .filter((a) => a.startedAtMs + a.latencyMs >= killedAtMs && a.startedAtMs < restartAtMs);
      duringOutage.push(...thisOutage);
      const open = client.attempted.filter((e) => !e.answers.some(isFinal));
      const retried = await client.retryUnanswered();
      // A 503 whose retry is a replay had committed: the database died after COMMIT, before the answer.
      const committedBut503 = open.filter((e) => e.answers.find(isFinal)?.replayed === true).length;
      // How long after the kill (or after it was sent, if later) each of these was answered.
      const answerMsMax = Math.max(...thisOutage.map((a) => a.startedAtMs + a.latencyMs - Math.max(a.startedAtMs, killedAtMs)));
      report('PostgreSQL SIGKILL', { round, processesKilled: pids.length, answersDuringOutage: thisOutage.length, answerMsMax, postgresRestartMs: restartMs, recoveryMs, retried, committedBut503 });
    }
  }, 180_000);

  it('while PostgreSQL is down, every request is answered 503 storage_unavailable with Retry-After, within bounded time', () => {
    expect(duringOutage.length).toBeGreaterThan(0);
    for (const a of duringOutage) {
      // An answer that left before the kill may be a 2xx; everything else is a 503.
      if (a.status !== null && a.status < 300) continue;
      expect({ status: a.status, code: a.body?.code }).toEqual({ status: 503, code: 'storage_unavailable' });
      expect(a.latencyMs).toBeLessThan(answerWithinMs);
    }
  });

  it('the app recovers by itself once PostgreSQL is back: same process, requests succeed again', () => {
    expect(app.pid).toBe(appPid);
    expect(app.running).toBe(true);
  });

  it('G5: every acknowledged purchase survives the database crash', async () => {
    await expectAcknowledgedDurable(sql, client.attempted);
  });

  it('G2: purchases retried with their keys after the crash take effect exactly once', async () => {
    await expectExactlyOnce(sql, client.attempted, skus);
    const purchases = client.attempted.filter((e) => e.op.kind === 'purchase');
    for (const e of purchases) expect(e.answers.find(isFinal)?.body.status, e.op.key).toBe('purchased');
  });

  it('G1 G3 G4 G7: counters equal the sums over reservation rows, events replay to them, and verify finds nothing', async () => {
    await expectDatabaseConsistent(db.url, sql);
  });
});

describe('reservations that expire while PostgreSQL is down', () => {
  const sku = 'EXPIRE-PG';
  let shortIds: string[] = [];

  beforeAll(async () => {
    const short = await Promise.all([1, 2, 3].map((n) => client.reserve(sku, n, 1, `short-${n}`)));
    await client.reserve(sku, 4, 600, 'long-1');
    shortIds = short.map((e) => e.answers[0]!.body.id);
    const expiresAtMs = Math.max(...short.map((e) => Date.parse(e.answers[0]!.body.expiresAt)));
    await db.kill();
    await waitUntil(() => Date.now() > expiresAtMs + 500, 5_000, 'the reservations expired while PostgreSQL was down');
    const startedMs = performance.now();
    await db.restart();
    await waitUntil(async () => {
      const { rows: [r] } = await sql.query(`select count(*)::int as n from reservations where id = any($1::uuid[]) and status = 'expired'`, [shortIds]);
      return r.n === shortIds.length;
    }, recoverWithinMs, 'the app expired them once PostgreSQL was back');
    report('expiry while PostgreSQL is down', { reconcileMsAfterPostgresRestart: performance.now() - startedMs });
  }, 60_000);

  it('G6: reservations that expired while PostgreSQL was down are expired after it is back, and their stock is available again', async () => {
    const inventory = await client.http('GET', `/products/${sku}/inventory`);
    expect(inventory.body).toMatchObject({ reserved: 4, activeReservations: 1 });
    const { rows } = await sql.query(`select source from inventory_events where type = 'expired' and reservation_id = any($1::uuid[])`, [shortIds]);
    expect(rows.map((r) => r.source)).toEqual(['sweeper', 'sweeper', 'sweeper']);
  });

  it('G5 G1 G3 G4 G7: every acknowledged answer is there and the database is consistent', async () => {
    await expectAcknowledgedDurable(sql, client.attempted);
    await expectDatabaseConsistent(db.url, sql);
  });
});
