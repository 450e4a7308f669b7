import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import {
  AppProcess, ChaosClient, type ChaosDatabase, chaosRounds, expectAcknowledgedDurable, expectDatabaseConsistent,
  expectExactlyOnce, finalAnswers, isFinal, report, shortTimeouts, sleep, startLoad, testPool, type Answer,
  startChaosDatabase,
} from '../support/chaos.ts';
import { waitUntil } from '../support/database.ts';

// PostgreSQL is frozen (SIGSTOP to the postmaster and every backend) for a few seconds while
// clients reserve and purchase: it accepts TCP connections and never answers, the worst kind of
// outage. With 1.5 s query and statement timeouts and a 1 s connection timeout, no request may
// wait unboundedly; after SIGCONT the pool must recover on its own.

let db: ChaosDatabase;
let app: AppProcess;
let client: ChaosClient;
let sql: pg.Pool;
const skus = ['FREEZE-A', 'FREEZE-B'];
const frozenMs = 3_000;
/**
 * The bound a request may wait while the database hangs: its own query timeout (1.5 s) after the
 * batch ahead of it in the actor's mailbox timed out (1.5 s), a connection timeout (1 s) on the
 * way, and a second of slack for a loaded machine.
 */
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
  // Thawed first, whatever happened: a stopped PostgreSQL cannot be stopped.
  db?.thaw();
  await app?.kill();
  await client?.close();
  await sql?.end();
  await db?.destroy();
}, 30_000);

describe('PostgreSQL frozen with SIGSTOP for a few seconds, then SIGCONT', () => {
  /** Answers to requests in flight at the freeze or sent while PostgreSQL was frozen. */
  const duringFreeze: { answer: Answer; waitedMs: number }[] = [];
  let appPid = 0;

  beforeAll(async () => {
    appPid = app.pid;
    for (let round = 0; round < chaosRounds; round++) {
      const load = startLoad(client, {
        workers: 16,
        prefix: `fr${round}`,
        next: (w, i) => ({ kind: 'reserve', sku: skus[(w + i) % 2]!, key: `fr${round}-${w}-${i}`, quantity: 1, ttlSeconds: 600 }),
        then: (r) => ({ kind: 'purchase', sku: r.sku, key: `buy-${r.id}`, reservationId: r.id }),
      });
      const answeredBefore = finalAnswers(client);
      await waitUntil(() => finalAnswers(client) >= answeredBefore + 100, 20_000, 'requests under way before the freeze');

      const frozenAtMs = Date.now();
      const pids = db.freeze();
      await sleep(frozenMs);
      const thawedAtMs = Date.now();
      db.thaw();
      const recoveryStartedMs = performance.now();
      const probe = client.start({ kind: 'reserve', sku: skus[0]!, key: `probe-${round}`, quantity: 1, ttlSeconds: 600 });
      await waitUntil(async () => (await client.send(probe)).status === 201, recoverWithinMs, 'the app served a reservation again after SIGCONT');
      const recoveryMs = performance.now() - recoveryStartedMs;
      await load.stop();

      for (const e of client.attempted) {
        for (const answer of e.answers) {
          const endMs = answer.startedAtMs + answer.latencyMs;
          if (endMs >= frozenAtMs && answer.startedAtMs < thawedAtMs) {
            duringFreeze.push({ answer, waitedMs: Math.min(endMs, thawedAtMs) - Math.max(answer.startedAtMs, frozenAtMs) });
          }
        }
      }
      const open = client.attempted.filter((e) => !e.answers.some(isFinal));
      const retried = await client.retryUnanswered();
      const committedBut503 = open.filter((e) => e.answers.find(isFinal)?.replayed === true).length;
      const waits = duringFreeze.map((d) => d.answer.latencyMs).sort((a, b) => a - b);
      report('PostgreSQL SIGSTOP', {
        round, processesFrozen: pids.length, frozenMs, answersDuringFreeze: duringFreeze.length,
        latencyMsP50: waits[Math.floor(waits.length / 2)] ?? 0, latencyMsMax: waits.at(-1) ?? 0, recoveryMs, retried, committedBut503,
      });
    }
  }, 180_000);

  it('no request waits unboundedly: while PostgreSQL is frozen every request is answered 503 storage_unavailable within the configured timeouts', () => {
    const refused = duringFreeze.filter((d) => d.answer.status === null || d.answer.status >= 300);
    expect(refused.length).toBeGreaterThan(0);
    for (const { answer } of refused) {
      expect({ status: answer.status, code: answer.body?.code }).toEqual({ status: 503, code: 'storage_unavailable' });
      expect(answer.latencyMs).toBeLessThan(answerWithinMs);
    }
  });

  it('the pool recovers after SIGCONT: the same app process serves requests again', () => {
    expect(app.pid).toBe(appPid);
    expect(app.running).toBe(true);
  });

  it('G5: every acknowledged reservation and purchase survives the freeze', async () => {
    await expectAcknowledgedDurable(sql, client.attempted);
  });

  it('G2: requests that timed out and were retried with their keys take effect exactly once', async () => {
    await expectExactlyOnce(sql, client.attempted, skus);
  });

  it('G1 G3 G4 G7: counters equal the sums over reservation rows, events replay to them, and verify finds nothing', async () => {
    await expectDatabaseConsistent(db.url, sql);
  });
});
