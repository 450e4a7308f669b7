import { beforeAll, describe, expect, it } from 'vitest';
import { durability } from '../../scripts/lib/acknowledged.ts';
import { answeredAtMs } from '../../scripts/lib/api-client.ts';
import { describeStates, type AutoctlNode, type NodeState } from '../../scripts/lib/formation.ts';
import { committedUnacknowledged } from '../../scripts/lib/request-accounting.ts';
import { waitUntil } from '../../scripts/lib/wait.ts';
import {
  expectAcknowledgedDurable,
  expectDatabaseConsistent,
  expectExactlyOnce,
  report,
  retryWithinMs,
} from '../support/chaos.ts';
import { mixedLoad, outageSeen, type Outage } from '../../scripts/lib/failover-load.ts';
import { failoverRigFor, pgAutoctl, pgAutoctlMissing } from '../support/failover.ts';

// High availability with pg_auto_failover: one app process (never restarted) whose DATABASE_URL
// names both nodes of a formation, `target_session_attrs=read-write`, under a mixed load of keyed
// reservations, purchases and cancels. The primary's node is lost, the old primary rejoins and the
// primary fails over back to it, the secondary is lost, and the primary freezes until the monitor
// has promoted its secondary. After each, every acknowledged write must be on the new primary, every
// request retried with its key must have taken effect once, and the database must be consistent.
// The monitor's timeouts are tuned down (scripts/lib/formation.ts, monitorSettings) so that each
// failover takes seconds.

const skus = ['HA-A', 'HA-B', 'HA-C'];
/** A formation whose nodes came back is healthy again within this long. */
const healthyWithinMs = 60_000;
/** The service answers a write again within this long of a node's loss (a failover takes seconds). */
const serviceWithinMs = 30_000;
/** Requests answered before a failure, so that it lands in a running load. */
const answeredBeforeFailure = 100;

const missing = pgAutoctl === null && !process.env.CI;
const writable = ['wait_primary', 'primary'];

describe.skipIf(missing)(`failover with pg_auto_failover${missing ? ` (${pgAutoctlMissing})` : ''}`, () => {
  const rig = failoverRigFor(skus);

  /** The node named `name`, the other node. */
  const nodes = (name: string): [AutoctlNode, AutoctlNode] => {
    const [a, b] = rig().formation.nodes;
    return a.name === name ? [a, b] : [b, a];
  };
  const stateOf = (states: readonly NodeState[], node: AutoctlNode) => states.find((s) => s.name === node.name);
  /**
   * Takes writes, as it reported and as the monitor wants it: wait_primary (alone) or primary (with
   * its synchronous standby). A lost node's last report stays 'primary' while its goal is demoted.
   */
  const takesWrites = (s: NodeState | undefined) =>
    s !== undefined && writable.includes(s.reported) && writable.includes(s.goal);

  /** Retries a keyed reservation until it is answered 201; returns when it was. */
  async function servedAgain(key: string): Promise<number> {
    const { log } = rig();
    const probe = log.start({ kind: 'reserve', sku: skus[0]!, key, quantity: 1, ttlSeconds: 600 });
    await waitUntil(
      async () => (await log.send(probe)).status === 201,
      serviceWithinMs,
      'the app served a reservation again',
      50,
    );
    return Date.now();
  }

  interface Run {
    readonly failedAtMs: number;
    readonly outage: Outage;
    readonly retried: number;
    readonly committedBut503: number;
  }

  /**
   * Starts the mixed load, lets `answeredBeforeFailure` requests be answered, runs `fail`, waits
   * until the app serves again and `settle` is done, stops the load, and retries every request
   * without a final answer with its own key until it has one.
   */
  async function underLoad(tag: string, fail: () => Promise<number>, settle: () => Promise<unknown>): Promise<Run> {
    const { log } = rig();
    const load = mixedLoad(log, skus, tag);
    let failedAtMs: number;
    try {
      const before = log.finalCount();
      await waitUntil(() => log.finalCount() >= before + answeredBeforeFailure, 20_000, 'a load under way');
      failedAtMs = await fail();
      await servedAgain(`${tag}-probe`);
      await settle();
    } finally {
      await load.stop();
    }
    const retried = await log.retryOpen(retryWithinMs);
    return {
      failedAtMs,
      outage: outageSeen(log.answers(), failedAtMs),
      retried: retried.length,
      committedBut503: committedUnacknowledged(retried),
    };
  }

  function reportRun(scenario: string, run: Run, figures: Record<string, number | string> = {}): void {
    report(scenario, {
      windowWithoutServiceMs: run.outage.windowMs ?? 'none',
      failureToServiceMs: run.outage.toServiceMs,
      answered503: run.outage.refused,
      retried: run.retried,
      committedBut503: run.committedBut503,
      ...figures,
    });
  }

  /** The guarantees every scenario ends with, checked on whichever node is the primary now. */
  function itKeepsTheGuarantees(failure: string): void {
    it(`G5: every acknowledged write survives ${failure}: it is on the new primary`, async () => {
      const sql = await rig().primarySql();
      try {
        await expectAcknowledgedDurable(sql, rig().log.attempted, 100);
      } finally {
        await sql.end();
      }
    });

    it(`G2: requests retried with their keys after ${failure} took effect exactly once`, async () => {
      const sql = await rig().primarySql();
      try {
        await expectExactlyOnce(sql, rig().log.attempted, skus);
      } finally {
        await sql.end();
      }
    });

    it('G1 G3 G4 G7: counters equal the sums over rows, and secventory verify passes on the new primary', async () => {
      const sql = await rig().primarySql();
      try {
        // verifyDatabase gets the multi-host URL: it finds the primary as the app does.
        await expectDatabaseConsistent(rig().formation.url, sql);
      } finally {
        await sql.end();
      }
    });
  }

  describe('the primary node is lost: SIGKILL to its keeper, its postmaster and every backend', () => {
    let run: Run;
    let states: NodeState[] = [];
    let appPid = 0;
    let lost: AutoctlNode;
    let survivor: AutoctlNode;

    beforeAll(async () => {
      const { formation, app } = rig();
      appPid = app.pid;
      const primary = await formation.waitUntilHealthy(healthyWithinMs);
      [lost, survivor] = nodes(primary.name);
      run = await underLoad(
        'lost',
        async () => (await lost.crash()).atMs,
        () => formation.waitForState((s) => takesWrites(stateOf(s, survivor)), serviceWithinMs, 'a new primary'),
      );
      states = await formation.states();
      reportRun('failover: primary node SIGKILLed', run, { from: lost.name, to: survivor.name });
    }, 120_000);

    it('the monitor promotes the secondary', () => {
      expect(takesWrites(stateOf(states, survivor)), describeStates(states)).toBe(true);
    });

    it('the same app process finds the new primary and serves again, without a restart', () => {
      const { app, moves } = rig();
      expect({ pid: app.pid, running: app.running }).toEqual({ pid: appPid, running: true });
      expect(moves.at(-1)?.to).toBe(`127.0.0.1:${survivor.port}`);
      expect(run.outage.toServiceMs).toBeLessThan(serviceWithinMs);
    });

    it('while no node takes writes, requests are answered 503 and not acknowledged', () => {
      expect(run.outage.refused).toBeGreaterThan(0);
      expect(run.retried).toBeGreaterThan(0);
    });

    itKeepsTheGuarantees('the loss of the primary node');
  });

  describe('the old primary rejoins as a secondary; then its primary fails over back to it', () => {
    let run: Run;
    let rejoinMs = 0;
    let rejoinedStates: NodeState[] = [];
    let synchronous = false;
    let rejoined: AutoctlNode;

    beforeAll(async () => {
      const { formation } = rig();
      const now = await formation.states();
      const primary = formation.nodes.find((n) => takesWrites(stateOf(now, n)));
      if (primary === undefined) throw new Error(`no node takes writes: ${describeStates(now)}`);
      [, rejoined] = nodes(primary.name);
      // pg_autoctl run again on the lost node: it rewinds and follows the new primary.
      const startedMs = performance.now();
      rejoined.run();
      await formation.waitUntilHealthy(healthyWithinMs);
      rejoinMs = performance.now() - startedMs;
      rejoinedStates = await formation.states();
      synchronous = await formation.replicatesSynchronously(primary);
      run = await underLoad(
        'back',
        async () => (await primary.crash()).atMs,
        () => formation.waitForState((s) => takesWrites(stateOf(s, rejoined)), serviceWithinMs, 'the failover back'),
      );
      reportRun('failover back: primary node SIGKILLed', run, { from: primary.name, to: rejoined.name, rejoinMs });
      // Back as the secondary, for the next scenario.
      primary.run();
      await formation.waitUntilHealthy(healthyWithinMs);
    }, 150_000);

    it('the lost node rejoins as a synchronous secondary once pg_autoctl runs on it again', () => {
      expect(stateOf(rejoinedStates, rejoined)?.reported, describeStates(rejoinedStates)).toBe('secondary');
      expect(synchronous).toBe(true);
    });

    it('the service follows the primary back to the node that rejoined', () => {
      const { app, moves } = rig();
      expect(app.running).toBe(true);
      expect(moves.at(-1)?.to).toBe(`127.0.0.1:${rejoined.port}`);
      expect(run.outage.toServiceMs).toBeLessThan(serviceWithinMs);
    });

    itKeepsTheGuarantees('the failover back');
  });

  describe('the secondary is lost: commits wait until the monitor drops the synchronous standby', () => {
    let run: Run;
    let syncDroppedMs = 0;
    let movesBefore = 0;

    beforeAll(async () => {
      const { formation } = rig();
      const primary = await formation.waitUntilHealthy(healthyWithinMs);
      const [, secondary] = nodes(primary.name);
      movesBefore = rig().moves.length;
      let syncDropped: Promise<number> | undefined;
      run = await underLoad(
        'alone',
        async () => {
          const { atMs } = await secondary.crash();
          // The monitor sets the primary to wait_primary, which empties synchronous_standby_names.
          syncDropped = formation
            .waitForState(
              (s) => stateOf(s, primary)?.reported === 'wait_primary',
              serviceWithinMs,
              'the primary drops its synchronous standby',
            )
            .then(() => Date.now() - atMs);
          return atMs;
        },
        async () => void (syncDroppedMs = await syncDropped!),
      );
      reportRun('secondary lost: commit stall', run, { stallMs: run.outage.toServiceMs, syncDroppedMs });
      // Back for the next scenario.
      secondary.run();
      await formation.waitUntilHealthy(healthyWithinMs);
    }, 150_000);

    it('writes are acknowledged again once the synchronous requirement is dropped; the stall is bounded', () => {
      expect(run.outage.toServiceMs).toBeLessThan(serviceWithinMs);
    });

    it('the service stays on the same primary', () => {
      expect(rig().moves.length).toBe(movesBefore);
    });

    itKeepsTheGuarantees('the loss of the secondary');
  });

  describe('the primary freezes (SIGSTOP) until the monitor fails over, then wakes up (SIGCONT)', () => {
    let run: Run;
    let frozenAtMs = 0;
    let oldPrimary: AutoctlNode;
    let newPrimary: AutoctlNode;
    let states: NodeState[] = [];

    beforeAll(async () => {
      const { formation } = rig();
      const primary = await formation.waitUntilHealthy(healthyWithinMs);
      [oldPrimary, newPrimary] = nodes(primary.name);
      let takeoverMs = 0;
      run = await underLoad(
        'frozen',
        async () => (frozenAtMs = oldPrimary.freeze().atMs),
        async () => {
          takeoverMs = await formation.waitForState(
            (s) => takesWrites(stateOf(s, newPrimary)),
            serviceWithinMs,
            'the secondary promoted',
          );
          oldPrimary.thaw();
          // The old primary's keeper learns it was demoted, rewinds and follows the new primary.
          await formation.waitUntilHealthy(healthyWithinMs);
        },
      );
      states = await formation.states();
      reportRun('failover: primary SIGSTOPped', run, { takeoverMs, from: oldPrimary.name, to: newPrimary.name });
    }, 150_000);

    it('the monitor promotes the secondary; the old primary, thawed, follows it as a secondary', () => {
      expect(stateOf(states, newPrimary)?.reported, describeStates(states)).toBe('primary');
      expect(stateOf(states, oldPrimary)?.reported, describeStates(states)).toBe('secondary');
    });

    it('the frozen old primary acknowledged nothing: each write acknowledged since is on the new one', async () => {
      const since = rig().log.attempted.map((e) => ({
        op: e.op,
        answers: e.answers.filter((a) => answeredAtMs(a) >= frozenAtMs),
      }));
      const sql = await rig().primarySql();
      try {
        const { checked, missing: lost } = await durability(sql, since);
        expect(lost).toEqual([]);
        expect(checked).toBeGreaterThan(0);
      } finally {
        await sql.end();
      }
      expect(rig().moves.at(-1)?.to).toBe(`127.0.0.1:${newPrimary.port}`);
    });

    itKeepsTheGuarantees('a frozen primary');
  });
});
