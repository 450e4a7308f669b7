import { connectionAcquireTimeoutMsDefault, queryTimeoutMsDefault } from '../../src/engine/limits.ts';
import { durability, exactlyOnce } from '../lib/acknowledged.ts';
import { answeredAtMs, ApiClient, clientAgent, isFinal, type Answer } from '../lib/api-client.ts';
import { committedUnacknowledged, OperationLog, type Attempted } from '../lib/request-accounting.ts';
import { sleep, waitUntil } from '../lib/wait.ts';
import { answerLine, figuresOf, tallyLine } from './answers.ts';
import type { ProofContext } from './context.ts';
import type { Criterion } from './criterion.ts';
import { productFacts } from './database-facts.ts';
import { summarizeLatencies } from './latency.ts';
import { startPurchaseLoad } from './purchase-load.ts';
import { excerptOf, type LogLine } from './server-log.ts';

export const killSkus = ['PGKILL-A', 'PGKILL-B'] as const;
/** Every reservation of this criterion: one unit, long enough never to expire during the proof. */
const oneForTenMinutes = { quantity: 1, ttlSeconds: 600 } as const;
const stock = 100_000;
const preReserved = 1_200;
const workers = 32;
/** Purchases answered before the kill, so that the kill lands in a running purchase load. */
const purchasesBeforeKill = 150;
const outageMs = 2_000;
/**
 * While PostgreSQL is gone no request may wait for it forever. The app's default timeouts bound the
 * wait: at most connectionAcquireTimeoutMsDefault for a pooled connection, then
 * queryTimeoutMsDefault for the query that never returns (a killed server usually refuses or
 * resets at once, which is faster still).
 */
export const answerWithinMs = connectionAcquireTimeoutMsDefault + queryTimeoutMsDefault;
const recoverWithinMs = 15_000;
const retryWithinMs = 30_000;

export interface OutageTimeline {
  readonly killedAtMs: number;
  readonly pids: readonly number[];
  readonly inFlightAtKill: number;
  readonly purchasesAnsweredAtKill: number;
  readonly allGoneMs: number;
  readonly postgresBackAtMs: number;
  readonly restartMs: number;
  readonly recoveryMs: number;
}

export interface DatabaseKilledEvidence {
  readonly attempted: readonly Attempted[];
  readonly timeline: OutageTimeline;
  /** The app process that lived through the outage, whose log holds the 503s. */
  readonly appName: string;
}

/**
 * Criterion 4: PostgreSQL is SIGKILLed (postmaster and every backend) while clients purchase. The
 * app must answer 503 within bounded time, recover by itself once PostgreSQL is restarted on the
 * same data directory and port, and every unacknowledged request retried with its key must take
 * effect exactly once.
 */
export async function databaseKilled(ctx: ProofContext, c: Criterion): Promise<DatabaseKilledEvidence> {
  c.done.push(
    `Created \`${killSkus.join('`, `')}\` (stock ${stock.toLocaleString('en')} each) and ${preReserved.toLocaleString('en')} reservations to purchase, all acknowledged.`,
    `Started ${workers} clients purchasing them back to back, each purchase with its own Idempotency-Key (\`buy-<reservation id>\`); when none was left they reserved and purchased new ones.`,
    `After ${purchasesBeforeKill} purchases had been answered, sent SIGKILL to the PostgreSQL postmaster and every one of its children at once, kept the clients going for ${outageMs / 1000} s, then started PostgreSQL again on the same data directory and port. The app was not touched.`,
    'Waited until the app served a reservation again, stopped the clients, and retried every request that had no final answer, with its own key, until it had one.',
  );
  c.expected.push(
    `While PostgreSQL is down every request is answered 503 \`storage_unavailable\` with Retry-After, within ${answerWithinMs / 1000} s (the app's default connection and query timeouts, ${connectionAcquireTimeoutMsDefault / 1000} s + ${queryTimeoutMsDefault / 1000} s); none hangs.`,
    'The same app process serves again once PostgreSQL is back (no restart); crash recovery loses no acknowledged commit.',
    'Every retried request completes exactly once (one effect event per key); every 2xx the clients saw is in the database with that outcome; counters equal the sums over the reservation rows.',
  );
  const agent = clientAgent(128);
  try {
    const log = new OperationLog(new ApiClient(ctx.app.url, agent, 'c4'));
    const appPid = ctx.app.pid;
    const startedMs = performance.now();
    const toPurchase = await setUp(log);
    const timeline = await runOutage(ctx, log, toPurchase);
    const retried = await log.retryOpen(retryWithinMs);
    const wallMs = performance.now() - startedMs;

    checkOutageAnswers(c, log, timeline);
    c.equal(
      'the app process that answered after the outage',
      `pid ${appPid}, running`,
      `pid ${ctx.app.pid}, ${ctx.app.running ? 'running' : 'gone'}`,
    );
    c.atMost(
      `time from PostgreSQL back to the app serving a reservation again`,
      recoverWithinMs,
      timeline.recoveryMs,
      ' ms',
    );
    await checkExactlyOnce(c, ctx, log, retried);
    await checkDurable(c, ctx, log);
    const oversold = await checkState(c, ctx, log);

    c.figures = figuresOf(log.answers(), wallMs, oversold);
    Object.assign(c.details, {
      'PostgreSQL processes SIGKILLed (postmaster + children)': timeline.pids.length,
      'purchases answered before the kill': timeline.purchasesAnsweredAtKill,
      'requests in flight at the kill': timeline.inFlightAtKill,
      'ms until every PostgreSQL process was gone': Math.round(timeline.allGoneMs),
      'PostgreSQL restart on the same data dir and port (ms)': Math.round(timeline.restartMs),
      'PostgreSQL back -> app serving again (ms)': Math.round(timeline.recoveryMs),
      'commands failed inside their batch transaction (the kill cut the transaction)': ctx.logBook
        .all()
        .filter(
          (l) =>
            l.server === ctx.app.name &&
            l.receivedAtMs >= timeline.killedAtMs &&
            l.msg === 'command not acknowledged' &&
            String(l.fields.reason).startsWith('commit batch'),
        ).length,
      'unacknowledged requests retried with their keys': retried.length,
      '... of which had committed before the crash (the retry was a replay)': committedUnacknowledged(retried),
    });
    c.notes.push(
      'The 2xx answers counted during the outage belong to batches that committed just before the kill; each of them is among the acknowledged answers found in PostgreSQL.',
      'A client answered 503 moved on to its next purchase, as a client told "not acknowledged" may; all of those were retried with their own keys afterwards, which is why the retries equal the 503s.',
      'The latency figures cover every request of the scenario, setup and retries included; the time to the 503 is measured separately above.',
    );
    excerpts(c, ctx, log, timeline);
    return { attempted: log.attempted, timeline, appName: ctx.app.name };
  } finally {
    await agent.close();
  }
}

async function setUp(log: OperationLog): Promise<{ id: string; sku: string }[]> {
  for (const sku of killSkus) await log.acknowledged({ kind: 'create', sku, stock });
  return Promise.all(
    Array.from({ length: preReserved }, async (_, i) => {
      const sku = killSkus[i % killSkus.length]!;
      const answer = await log.acknowledged({ kind: 'reserve', sku, key: `c4-pre-${i}`, ...oneForTenMinutes });
      return { id: answer.body.id as string, sku };
    }),
  );
}

async function runOutage(
  ctx: ProofContext,
  log: OperationLog,
  toPurchase: { id: string; sku: string }[],
): Promise<OutageTimeline> {
  const load = startPurchaseLoad(log, toPurchase, killSkus, workers);
  try {
    await waitUntil(
      () => load.purchasesAnswered() >= purchasesBeforeKill,
      20_000,
      `${purchasesBeforeKill} purchases answered before the kill`,
      5,
    );
    const inFlightAtKill = log.inFlight;
    const purchasesAnsweredAtKill = load.purchasesAnswered();
    const killedAtMs = Date.now();
    const pids = await ctx.db.kill();
    const allGoneMs = Date.now() - killedAtMs;
    await sleep(outageMs);
    const restartStartMs = Date.now();
    await ctx.db.restart();
    const postgresBackAtMs = Date.now();
    // A probe like any client's: a keyed reservation, retried until it is answered 201.
    const probe = log.start({ kind: 'reserve', sku: killSkus[0], key: 'c4-recovery-probe', ...oneForTenMinutes });
    await waitUntil(
      async () => (await log.send(probe)).status === 201,
      recoverWithinMs,
      'the app served a reservation again',
      100,
    );
    const recoveryMs = Date.now() - postgresBackAtMs;
    // Purchases succeed again under the same load before it stops.
    await sleep(1_000);
    return {
      killedAtMs,
      pids,
      inFlightAtKill,
      purchasesAnsweredAtKill,
      allGoneMs,
      postgresBackAtMs,
      restartMs: postgresBackAtMs - restartStartMs,
      recoveryMs,
    };
  } finally {
    await load.stop();
  }
}

/** Answers that arrived after the kill to requests sent before PostgreSQL was back. */
function outageAnswers(log: OperationLog, t: OutageTimeline): Answer[] {
  return log.answersDuring(t.killedAtMs, t.postgresBackAtMs);
}

function checkOutageAnswers(c: Criterion, log: OperationLog, t: OutageTimeline): void {
  c.atLeast(
    'purchases answered before the kill (the kill hit a running purchase load)',
    purchasesBeforeKill,
    t.purchasesAnsweredAtKill,
  );
  c.atLeast('requests in flight at the moment of the kill', 1, t.inFlightAtKill);
  const during = outageAnswers(log, t);
  const unavailable = during.filter((a) => a.status === 503 && a.body?.code === 'storage_unavailable');
  // A 2xx answered after the kill committed before it; anything else during the outage is wrong.
  const other = during.filter(
    (a) => !(a.status === 503 && a.body?.code === 'storage_unavailable') && !(a.status !== null && a.status < 300),
  );
  c.that(
    'answers to requests sent before PostgreSQL was back, answered after the kill',
    '503 storage_unavailable (or a 2xx committed before the kill)',
    tallyLine(during),
    other.length === 0 && unavailable.length > 0,
  );
  c.equal('503 answers without Retry-After', 0, unavailable.filter((a) => a.retryAfter === undefined).length);
  const all503 = log.answers().filter((a) => a.status === 503);
  c.equal(
    '503 answers, all phases, that are not storage_unavailable',
    0,
    all503.filter((a) => a.body?.code !== 'storage_unavailable').length,
  );
  const waits = unavailable.map((a) => answeredAtMs(a) - Math.max(a.sentAtMs, t.killedAtMs));
  const summary = summarizeLatencies(waits);
  c.atMost(
    'time to the 503 (from the kill, or from sending if later), max',
    answerWithinMs,
    summary?.maxMs ?? Infinity,
    ' ms',
  );
  Object.assign(c.details, {
    '503 storage_unavailable answers during the outage': unavailable.length,
    'time to the 503, p50 / p99 / max (ms)':
      summary === null ? '—' : [summary.p50Ms, summary.p99Ms, summary.maxMs].map(Math.round).join(' / '),
    'first 503 after the kill (ms)':
      unavailable.length === 0 ? '—' : Math.round(Math.min(...unavailable.map((a) => answeredAtMs(a) - t.killedAtMs))),
  });
}

/** Retries ended with one outcome per operation, and each key took effect exactly once. */
async function checkExactlyOnce(
  c: Criterion,
  ctx: ProofContext,
  log: OperationLog,
  retried: readonly Attempted[],
): Promise<void> {
  c.atLeast('requests without a final answer after the outage (retried with their keys)', 1, retried.length);
  const wrongFinal = retried.filter((e) => {
    const final = e.answers.find(isFinal)!;
    return e.op.kind === 'purchase'
      ? !(final.status === 200 && final.body.status === 'purchased')
      : final.status !== 201;
  });
  c.that(
    'final answer of every retried operation',
    'purchase: 200 purchased, reserve: 201',
    wrongFinal.length === 0
      ? 'as expected'
      : `${wrongFinal.length} differ, e.g. ${answerLine(wrongFinal[0]!.answers.at(-1)!)}`,
    wrongFinal.length === 0,
  );
  const found = await exactlyOnce(ctx.sql, log.attempted, killSkus);
  const first = (lines: readonly string[]) => (lines.length === 0 ? '' : `; first: ${lines[0]}`);
  const { operations, notOnce, unexplainedReservations } = found;
  c.equal('operations still without a final answer after the retries', 0, found.unanswered.length);
  c.equal('operations whose final answers differ from each other', 0, found.disagreeing.length);
  c.that(
    'operations whose key took effect exactly once (one reserved or purchased event)',
    `${operations} of ${operations}`,
    `${operations - notOnce.length} of ${operations}${first(notOnce)}`,
    notOnce.length === 0,
  );
  c.that(
    'reservation rows of PGKILL-* that no client was answered 201 for',
    '0',
    `${unexplainedReservations.length}${first(unexplainedReservations)}`,
    unexplainedReservations.length === 0,
  );
}

/** G5: every final answer the clients saw is in PostgreSQL with that outcome. */
async function checkDurable(c: Criterion, ctx: ProofContext, log: OperationLog): Promise<void> {
  const { checked, missing } = await durability(ctx.sql, log.attempted);
  const firstMissing = missing.length > 0 ? `; first missing: ${missing[0]}` : '';
  c.that(
    'acknowledged answers found in PostgreSQL with that outcome (stored key outcome = answer body; reservation row agrees)',
    `${checked} of ${checked}, at least 1`,
    `${checked - missing.length} of ${checked}${firstMissing}`,
    missing.length === 0 && checked > 0,
  );
}

/**
 * G1, G3, G4 on the products of the crash (the oracle checks them store-wide after every criterion).
 * Returns the units oversold.
 */
async function checkState(c: Criterion, ctx: ProofContext, log: OperationLog): Promise<number> {
  let oversold = 0;
  const purchaseOps = log.attempted.filter((e) => e.op.kind === 'purchase');
  const reserveOps = log.attempted.filter((e) => e.op.kind === 'reserve');
  const expected = { reserved: 0, purchased: 0 };
  const observed = { reserved: 0, purchased: 0, activeSum: 0, purchasedSum: 0 };
  for (const sku of killSkus) {
    const f = await productFacts(ctx.sql, sku);
    oversold += f.oversoldUnits;
    observed.reserved += f.reserved;
    observed.purchased += f.purchased;
    observed.activeSum += f.activeSum;
    observed.purchasedSum += f.purchasedSum;
  }
  expected.purchased = purchaseOps.length;
  expected.reserved = reserveOps.length - purchaseOps.length;
  c.equal(
    'PGKILL-* counters: purchased = purchase operations, reserved = reservations not purchased; sums over rows agree',
    { ...expected, activeSum: expected.reserved, purchasedSum: expected.purchased },
    observed,
  );
  return oversold;
}

function excerpts(c: Criterion, ctx: ProofContext, log: OperationLog, t: OutageTimeline): void {
  const during = outageAnswers(log, t).filter((a) => a.status === 503);
  c.excerpt('Answers during the outage (two 503s) and after recovery (the probe)', [
    ...during.slice(0, 2).map(answerLine),
    ...log.attempted
      .filter((e) => e.op.kind === 'reserve' && e.op.key === 'c4-recovery-probe')
      .flatMap((e) => e.answers.filter((a) => a.status === 201))
      .map(answerLine),
  ]);
  const warnings = ctx.logBook
    .all()
    .filter((l) => l.server === ctx.app.name && l.receivedAtMs >= t.killedAtMs && l.level >= 40);
  const byMsg = new Map<string, LogLine[]>();
  for (const line of warnings) byMsg.set(line.msg, [...(byMsg.get(line.msg) ?? []), line]);
  c.excerpt(
    'Server log from the kill on: lines at warn and above, by message, and the first of each (two of the failed commands)',
    [
      ...[...byMsg].map(([msg, lines]) => `${String(lines.length).padStart(6)} x "${msg}"`),
      '',
      ...[...byMsg]
        .flatMap(([msg, lines]) => lines.slice(0, msg === 'command not acknowledged' ? 2 : 1))
        .map(excerptOf),
    ],
  );
  c.excerpt(
    'PostgreSQL log of the restart (crash recovery)',
    ctx.db
      .logSince(t.killedAtMs)
      .filter((line) =>
        /LOG: .*(interrupted|not properly shut down|redo|checkpoint complete|ready to accept)/.test(line),
      )
      .slice(0, 8),
  );
}
