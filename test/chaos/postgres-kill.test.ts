import { beforeAll, describe, expect, it } from 'vitest';
import { answeredAtMs, isFinal, type Answer } from '../../scripts/lib/api-client.ts';
import { committedUnacknowledged, scopeOf, startLoad } from '../../scripts/lib/request-accounting.ts';
import { sleep, waitUntil } from '../../scripts/lib/wait.ts';
import {
  chaosRigFor,
  chaosRounds,
  expectAcknowledgedDurable,
  expectDatabaseConsistent,
  itKeepsTheGuarantees,
  report,
  retryWithinMs,
  shortTimeouts,
} from '../support/chaos.ts';

// PostgreSQL is SIGKILLed - the postmaster and every backend at once, as in a crash - while
// clients purchase. The app must answer 503 quickly while it is gone, recover by itself when it
// is back (the same app process, no restart), and the clients' retries must take effect once.

const skus = ['PGKILL-A', 'PGKILL-B', 'EXPIRE-PG'];
const rig = chaosRigFor(shortTimeouts, skus);
/** With 1.5 s query and statement timeouts and a 1 s connection timeout (see shortTimeouts). */
const answerWithinMs = 5_000;
const recoverWithinMs = 10_000;

/** Retries a probe reserve until it is answered 201; returns how long that took. */
async function recovered(key: string): Promise<number> {
  const { log } = rig();
  const probe = log.start({ kind: 'reserve', sku: 'PGKILL-A', key, quantity: 1, ttlSeconds: 600 });
  return waitUntil(
    async () => (await log.send(probe)).status === 201,
    recoverWithinMs,
    'the app served a reservation again',
  );
}

describe('PostgreSQL SIGKILLed mid-purchase, then restarted on the same data directory', () => {
  /** Answers to requests in flight at the kill or sent while PostgreSQL was down. */
  const duringOutage: Answer[] = [];
  let appPid = 0;

  beforeAll(async () => {
    const { log, db } = rig();
    appPid = rig().app.pid;
    for (let round = 0; round < chaosRounds; round++) {
      // Reservations to purchase, acknowledged before anything goes wrong.
      const toPurchase = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          log
            .acknowledged({
              kind: 'reserve',
              sku: skus[i % 2]!,
              key: `pre-${round}-${i}`,
              quantity: 1,
              ttlSeconds: 600,
            })
            .then((a) => a.body as { id: string; sku: string }),
        ),
      );
      let next = 0;
      const load = startLoad(log, {
        workers: 16,
        next: (w, i) => {
          const r = toPurchase[next++];
          return r === undefined
            ? { kind: 'reserve', sku: skus[i % 2]!, key: `pk${round}-${w}-${i}`, quantity: 1, ttlSeconds: 600 }
            : { kind: 'purchase', sku: r.sku, key: `buy-${r.id}`, reservationId: r.id };
        },
      });
      const answeredBefore = log.finalCount();
      await waitUntil(() => log.finalCount() >= answeredBefore + 60, 20_000, 'purchases under way before the kill');

      const killedAtMs = Date.now();
      const pids = await db.kill();
      // Keep the clients coming while PostgreSQL is down.
      await sleep(2_000);
      const restartAtMs = Date.now();
      await db.restart();
      const restartMs = Date.now() - restartAtMs;
      const recoveryMs = await recovered(`probe-${round}`);
      await load.stop();
      const thisOutage = log.answersDuring(killedAtMs, restartAtMs);
      duringOutage.push(...thisOutage);
      const retried = await log.retryOpen(retryWithinMs);
      // A 503 whose retry is a replay had committed: the database died after COMMIT, before the answer.
      const committedBut503 = committedUnacknowledged(retried);
      // How long after the kill (or after it was sent, if later) each of these was answered.
      const answerMsMax = Math.max(...thisOutage.map((a) => answeredAtMs(a) - Math.max(a.sentAtMs, killedAtMs)));
      report('PostgreSQL SIGKILL', {
        round,
        processesKilled: pids.length,
        answersDuringOutage: thisOutage.length,
        answerMsMax,
        postgresRestartMs: restartMs,
        recoveryMs,
        retried: retried.length,
        committedBut503,
      });
    }
  }, 180_000);

  it('while PostgreSQL is down, every request is answered 503 storage_unavailable with Retry-After, within bounded time', () => {
    expect(duringOutage.length).toBeGreaterThan(0);
    for (const a of duringOutage) {
      // An answer that left before the kill may be a 2xx; everything else is a 503.
      if (a.status !== null && a.status < 300) continue;
      expect({ status: a.status, code: a.body?.code }).toEqual({ status: 503, code: 'storage_unavailable' });
      expect(a.retryAfter).toBeDefined();
      expect(a.latencyMs).toBeLessThan(answerWithinMs);
    }
  });

  it('the app recovers by itself once PostgreSQL is back: same process, requests succeed again', () => {
    expect(rig().app.pid).toBe(appPid);
    expect(rig().app.running).toBe(true);
  });

  itKeepsTheGuarantees(rig, skus, 'a PostgreSQL crash');

  it('G2: every purchase, retried or not, ends purchased: none was lost to the crash', () => {
    const purchases = rig().log.attempted.filter((e) => e.op.kind === 'purchase');
    expect(purchases.length).toBeGreaterThan(0);
    for (const e of purchases)
      expect(e.answers.find(isFinal)?.body.status, `${e.op.kind} ${scopeOf(e.op)}`).toBe('purchased');
  });
});

describe('reservations that expire while PostgreSQL is down', () => {
  const sku = 'EXPIRE-PG';
  let shortIds: string[] = [];

  beforeAll(async () => {
    const { log, db, sql } = rig();
    const reserve = async (quantity: number, ttlSeconds: number, key: string) =>
      (await log.acknowledged({ kind: 'reserve', sku, key, quantity, ttlSeconds })).body as {
        id: string;
        expiresAt: string;
      };
    const short = await Promise.all([1, 2, 3].map((n) => reserve(n, 1, `short-${n}`)));
    await reserve(4, 600, 'long-1');
    shortIds = short.map((r) => r.id);
    const expiresAtMs = Math.max(...short.map((r) => Date.parse(r.expiresAt)));
    await db.kill();
    await waitUntil(() => Date.now() > expiresAtMs + 500, 5_000, 'the reservations expired while PostgreSQL was down');
    const startedMs = performance.now();
    await db.restart();
    await waitUntil(
      async () => {
        const {
          rows: [r],
        } = await sql.query(
          `select count(*)::int as n from reservations where id = any($1::uuid[]) and status = 'expired'`,
          [shortIds],
        );
        return r.n === shortIds.length;
      },
      recoverWithinMs,
      'the app expired them once PostgreSQL was back',
    );
    report('expiry while PostgreSQL is down', { reconcileMsAfterPostgresRestart: performance.now() - startedMs });
  }, 60_000);

  it('G6: reservations that expired while PostgreSQL was down are expired after it is back, and their stock is available again', async () => {
    const inventory = await rig().log.client.send('GET', `/products/${sku}/inventory`);
    expect(inventory.body).toMatchObject({ reserved: 4, activeReservations: 1 });
    const { rows } = await rig().sql.query(
      `select source from inventory_events where type = 'expired' and reservation_id = any($1::uuid[])`,
      [shortIds],
    );
    expect(rows.map((r) => r.source)).toEqual(['sweeper', 'sweeper', 'sweeper']);
  });

  it('G5 G1 G3 G4 G7: every acknowledged answer is there and the database is consistent', async () => {
    await expectAcknowledgedDurable(rig().sql, rig().log.attempted);
    await expectDatabaseConsistent(rig().db.url, rig().sql);
  });
});
