import { beforeAll, describe, expect, it } from 'vitest';
import { answeredAtMs, type Answer } from '../../scripts/lib/api-client.ts';
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

// PostgreSQL is frozen (SIGSTOP to the postmaster and every backend) for a few seconds while
// clients reserve and purchase: it accepts TCP connections and never answers, the worst kind of
// outage. With 1.5 s query and statement timeouts and a 1 s connection timeout, no request may
// wait unboundedly; after SIGCONT the pool must recover on its own.

const skus = ['FREEZE-A', 'FREEZE-B'];
const rig = chaosRigFor(shortTimeouts, skus);
const frozenMs = 3_000;
/**
 * The bound a request may wait while the database hangs: its own query timeout (1.5 s) after the
 * batch ahead of it in the actor's mailbox timed out (1.5 s), a connection timeout (1 s) on the
 * way, and a second of slack for a loaded machine.
 */
const answerWithinMs = 5_000;
const recoverWithinMs = 10_000;

describe('PostgreSQL frozen with SIGSTOP for a few seconds, then SIGCONT', () => {
  /** Answers to requests in flight at the freeze or sent while PostgreSQL was frozen. */
  const duringFreeze: { answer: Answer; waitedMs: number }[] = [];
  let appPid = 0;

  beforeAll(async () => {
    const { log, db } = rig();
    appPid = rig().app.pid;
    for (let round = 0; round < chaosRounds; round++) {
      const load = startLoad(log, {
        workers: 16,
        next: (w, i) => ({
          kind: 'reserve',
          sku: skus[(w + i) % 2]!,
          key: `fr${round}-${w}-${i}`,
          quantity: 1,
          ttlSeconds: 600,
        }),
        then: (r) => ({ kind: 'purchase', sku: r.sku, key: `buy-${r.id}`, reservationId: r.id }),
      });
      const answeredBefore = log.finalCount();
      await waitUntil(() => log.finalCount() >= answeredBefore + 100, 20_000, 'requests under way before the freeze');

      const frozenAtMs = Date.now();
      const pids = db.freeze();
      await sleep(frozenMs);
      const thawedAtMs = Date.now();
      db.thaw();
      const recoveryStartedMs = performance.now();
      const probe = log.start({ kind: 'reserve', sku: skus[0]!, key: `probe-${round}`, quantity: 1, ttlSeconds: 600 });
      await waitUntil(
        async () => (await log.send(probe)).status === 201,
        recoverWithinMs,
        'the app served a reservation again after SIGCONT',
      );
      const recoveryMs = performance.now() - recoveryStartedMs;
      await load.stop();

      for (const answer of log.answersDuring(frozenAtMs, thawedAtMs)) {
        duringFreeze.push({
          answer,
          waitedMs: Math.min(answeredAtMs(answer), thawedAtMs) - Math.max(answer.sentAtMs, frozenAtMs),
        });
      }
      const retried = await log.retryOpen(retryWithinMs);
      const committedBut503 = committedUnacknowledged(retried);
      const waits = duringFreeze.map((d) => d.answer.latencyMs).sort((a, b) => a - b);
      report('PostgreSQL SIGSTOP', {
        round,
        processesFrozen: pids.length,
        frozenMs,
        answersDuringFreeze: duringFreeze.length,
        latencyMsP50: waits[Math.floor(waits.length / 2)] ?? 0,
        latencyMsMax: waits.at(-1) ?? 0,
        recoveryMs,
        retried: retried.length,
        committedBut503,
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
    expect(rig().app.pid).toBe(appPid);
    expect(rig().app.running).toBe(true);
  });

  itKeepsTheGuarantees(rig, skus, 'a PostgreSQL freeze');
});
