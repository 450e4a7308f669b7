import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { durability, exactlyOnce } from '../lib/acknowledged.ts';
import { ApiClient, clientAgent } from '../lib/api-client.ts';
import { checkPool } from '../lib/check-pool.ts';
import { mixedLoad, outageSeen, primaryMoveOf, type Outage, type PrimaryMove } from '../lib/failover-load.ts';
import { describeStates, Formation, monitorSettings, type AutoctlNode, type NodeState } from '../lib/formation.ts';
import { databaseViolations } from '../lib/oracle.ts';
import { committedUnacknowledged, OperationLog } from '../lib/request-accounting.ts';
import { ServerProcess } from '../lib/server-process.ts';
import { waitUntil } from '../lib/wait.ts';
import { figuresOf, tallyLine } from './answers.ts';
import { appEnv, type ProofContext } from './context.ts';
import type { Criterion } from './criterion.ts';
import { productFacts } from './database-facts.ts';
import { excerptOf } from './server-log.ts';

export const failoverSkus = ['HA-A', 'HA-B', 'HA-C'] as const;
const appName = 'app (failover)';
/** Requests answered before the kill, so that it lands in a running load. */
const answeredBeforeKill = 150;
/** A failover with the monitor's timeouts (scripts/lib/formation.ts) takes seconds; far less than this. */
const serviceWithinMs = 30_000;
const retryWithinMs = 30_000;
const healthyWithinMs = 60_000;

const writable = ['wait_primary', 'primary'];
const takesWrites = (states: readonly NodeState[], node: AutoctlNode) =>
  states.some((s) => s.name === node.name && writable.includes(s.reported) && writable.includes(s.goal));

interface Failover {
  readonly log: OperationLog;
  readonly app: ServerProcess;
  readonly lost: AutoctlNode;
  readonly survivor: AutoctlNode;
  readonly killedAtMs: number;
  readonly pids: readonly number[];
  readonly promotedMs: number;
  readonly outage: Outage;
  readonly retried: number;
  readonly committedBut503: number;
  readonly wallMs: number;
}

/**
 * Criterion 8 (when pg_autoctl is installed): a pg_auto_failover formation (a monitor, a primary, a
 * synchronous secondary) and one app whose DATABASE_URL names both nodes. The primary's node is
 * SIGKILLed under a mixed load; the monitor promotes the secondary, the same app process finds it
 * and serves again, and every acknowledged write is on the new primary, each retried one once.
 */
export async function failover(ctx: ProofContext, c: Criterion, pgAutoctl: string): Promise<void> {
  describe(c);
  const formation = await Formation.start(pgAutoctl, 'secventory-prove-failover-');
  ctx.cleanup.add(`stop the pg_auto_failover formation in ${formation.dir} and remove it`, () => formation.destroy());
  const moves: PrimaryMove[] = [];
  const app = await ServerProcess.start({
    name: appName,
    env: appEnv(formation.url),
    onLine: (line) => {
      ctx.logBook.add(appName, line);
      const move = primaryMoveOf(line);
      if (move !== null) moves.push(move);
    },
    onSpawned: (started) =>
      ctx.cleanup.add(`stop ${appName} (pid ${started.pid})`, async () => void (await started.stop())),
  });
  const run = await loseThePrimary(formation, app);
  await check(c, formation, run, moves);
  const locatorLines = ctx.logBook
    .all()
    .filter((l) => l.server === appName && /primary/.test(l.msg))
    .slice(0, 6);
  c.excerpt('Server log: the app looking for the primary and following it', locatorLines.map(excerptOf));
  await app.stop();
  await formation.destroy();
}

function describe(c: Criterion): void {
  const timeouts = Object.entries(monitorSettings)
    .map(([k, v]) => `\`${k.replace('pgautofailover.', '')} = ${v}\``)
    .join(', ');
  c.done.push(
    'Started a pg_auto_failover formation on loopback: a monitor, a primary and a synchronous secondary ' +
      '(`pg_autoctl run` each, as the user `postgres`, fsync on), with the monitor tuned to fail over in ' +
      `seconds: ${timeouts} (milliseconds).`,
    'Started one app process whose DATABASE_URL names both nodes, ' +
      '`postgres://postgres@<a>,<b>/secventory?target_session_attrs=read-write`, with the default timeouts, ' +
      'and created the products through it.',
    'Started 16 clients reserving and then purchasing or cancelling each reservation, every request with its ' +
      `own Idempotency-Key. After ${answeredBeforeKill} answers, sent SIGKILL to the primary node's pg_autoctl, ` +
      'its postmaster and every backend at once (the machine is lost).',
    'Waited until the app served a reservation again, stopped the clients, and retried every request without ' +
      'a final answer with its own key until it had one.',
  );
  c.expected.push(
    'The monitor promotes the secondary; the same app process, not restarted, finds it and serves again ' +
      'within seconds.',
    'While no node takes writes, requests are answered 503 `storage_unavailable` (not acknowledged).',
    'Every acknowledged write is on the new primary (none lost: the commit waited for the synchronous ' +
      'standby), every retried request took effect once, counters equal the sums over rows, and ' +
      '`secventory verify` passes on the new primary.',
  );
}

async function loseThePrimary(formation: Formation, app: ServerProcess): Promise<Failover> {
  const agent = clientAgent(128);
  try {
    const log = new OperationLog(new ApiClient(app.url, agent, 'c8'));
    const startedMs = performance.now();
    for (const sku of failoverSkus) await log.acknowledged({ kind: 'create', sku, stock: 1_000_000 });
    const primary = await formation.waitUntilHealthy(healthyWithinMs);
    const lost = primary;
    const [survivor] = formation.nodes.filter((n) => n !== primary);
    if (survivor === undefined) throw new Error('a formation of two nodes has a secondary');
    const load = mixedLoad(log, failoverSkus, 'c8');
    let killedAtMs = 0;
    let pids: readonly number[] = [];
    let promotedMs = 0;
    try {
      await waitUntil(() => log.finalCount() >= answeredBeforeKill, 20_000, 'a load under way');
      ({ pids, atMs: killedAtMs } = await lost.crash());
      await formation.waitForState((s) => takesWrites(s, survivor), serviceWithinMs, 'a new primary');
      promotedMs = Date.now() - killedAtMs;
      const probe = log.start({ kind: 'reserve', sku: failoverSkus[0], key: 'c8-probe', quantity: 1, ttlSeconds: 600 });
      await waitUntil(async () => (await log.send(probe)).status === 201, serviceWithinMs, 'served again', 50);
    } finally {
      await load.stop();
    }
    const retried = await log.retryOpen(retryWithinMs);
    return {
      log,
      app,
      lost,
      survivor,
      killedAtMs,
      pids,
      promotedMs,
      outage: outageSeen(log.answers(), killedAtMs),
      retried: retried.length,
      committedBut503: committedUnacknowledged(retried),
      wallMs: performance.now() - startedMs,
    };
  } finally {
    await agent.close();
  }
}

async function check(c: Criterion, formation: Formation, run: Failover, moves: readonly PrimaryMove[]): Promise<void> {
  const { log, outage, survivor, lost, app } = run;
  const states = await formation.states();
  c.that(
    'the monitor promoted the secondary',
    `${survivor.name} takes writes`,
    describeStates(states),
    takesWrites(states, survivor),
  );
  const to = `127.0.0.1:${survivor.port}`;
  c.that(
    'the app process after the failover: same pid, running, following the new primary',
    `running, moved to ${to}`,
    `pid ${app.pid} ${app.running ? 'running' : 'gone'}, moved to ${moves.at(-1)?.to ?? 'nowhere'}`,
    app.running && moves.at(-1)?.to === to,
  );
  c.atMost(
    'window without service: first 503 to the first success of a request sent after it',
    serviceWithinMs,
    outage.windowMs ?? Infinity,
    ' ms',
  );
  const after = log.answersDuring(run.killedAtMs, run.killedAtMs + outage.toServiceMs);
  c.that(
    'answers to requests that met the failover',
    '503 storage_unavailable (or a 2xx committed before the kill)',
    tallyLine(after),
    after.every(
      (a) => (a.status !== null && a.status < 300) || (a.status === 503 && a.body?.code === 'storage_unavailable'),
    ),
  );
  const sql = checkPool(await formation.primaryUrl());
  try {
    const { checked, missing } = await durability(sql, log.attempted);
    c.that(
      'acknowledged answers found on the new primary with that outcome',
      `${checked} of ${checked}, at least 1`,
      `${checked - missing.length} of ${checked}${missing.length > 0 ? `; first missing: ${missing[0]}` : ''}`,
      missing.length === 0 && checked > 0,
    );
    const once = await exactlyOnce(sql, log.attempted, failoverSkus);
    const wrong = [...once.unanswered, ...once.disagreeing, ...once.notOnce, ...once.unexplainedReservations];
    c.that(
      'keyed operations that took effect exactly once (retries included), and no reservation nobody was answered for',
      `${once.operations} of ${once.operations}`,
      `${once.operations - wrong.length} of ${once.operations}${wrong.length > 0 ? `; first: ${wrong[0]}` : ''}`,
      wrong.length === 0,
    );
    let oversold = 0;
    for (const sku of failoverSkus) oversold += (await productFacts(sql, sku)).oversoldUnits;
    c.figures = figuresOf(log.answers(), run.wallMs, oversold);
    c.verified(await verifyDatabase(formation.url));
    c.checkedByOracle(await databaseViolations(sql));
  } finally {
    await sql.end();
  }
  Object.assign(c.details, {
    'node lost (SIGKILL to pg_autoctl, postmaster and backends)': `${lost.name} (${run.pids.length} processes)`,
    'new primary': survivor.name,
    'kill -> monitor shows the new primary taking writes (ms)': Math.round(run.promotedMs),
    'window without service: first 503 -> first success (ms)':
      outage.windowMs === null ? '—' : Math.round(outage.windowMs),
    'kill -> first success of a request sent after it (ms)': Math.round(outage.toServiceMs),
    'requests answered 503 during the failover': outage.refused,
    'the app searching for the primary (ms, from its log)': Math.round(moves.at(-1)?.searchMs ?? 0),
    'unacknowledged requests retried with their keys': run.retried,
    '... of which had committed before the kill (the retry was a replay)': run.committedBut503,
  });
  c.notes.push(
    "With the monitor's defaults (a node unhealthy after 20 s without a report, 30 s for an unreachable " +
      'primary to demote itself) the same failover takes about a minute; the tuned values are in the first ' +
      'line above.',
    'A write acknowledged while the formation runs on one node (after the secondary is lost, before it is ' +
      'back) is on that node only: see README, High availability.',
  );
}
