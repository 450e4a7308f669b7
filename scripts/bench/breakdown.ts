// Where a batch's time goes, piece by piece: read from the server's /metrics (its own clocks) and
// from PostgreSQL's statistics of the commit function, after a scenario's load.
import pg from 'pg';

export interface Breakdown {
  /** Group-commit statements sent, and batches (one product each) they carried. */
  statements: number;
  batchesPerStatement: number;
  /** Mean ms a batch waited before its statement was sent (the product's previous statement running). */
  queuedMs: number;
  /** Mean ms from sending a statement to reading its answer. */
  roundTripMs: number;
  /** Mean ms PostgreSQL spent inside secventory_commit_batches per call (track_functions). */
  functionMs: number | null;
  /** Mean ms from a batch entering the commit pipeline to its actor applying it (the `commit ms` column). */
  batchCommitMs: number;
  /** Event-loop delay over the run (monitorEventLoopDelay, through prom-client's default metrics). */
  eventLoopMeanMs: number;
  eventLoopP99Ms: number;
}

/**
 * Turns on timing of PL/pgSQL functions for the scenario's database (its server connects
 * afterwards). Only a superuser may; on a DATABASE_URL without that right the column says n/a.
 */
export async function timeFunctions(admin: pg.Client, database: string): Promise<void> {
  await admin.query(`alter database ${database} set track_functions = 'all'`).catch(() => undefined);
}

function metric(text: string, name: string): number | null {
  const value = new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+|NaN)$`, 'm').exec(text)?.[1];
  return value === undefined ? null : Number(value);
}

function meanMs(text: string, histogram: string): number {
  const sum = metric(text, `${histogram}_sum`) ?? 0;
  const count = metric(text, `${histogram}_count`) ?? 0;
  return count === 0 ? 0 : (sum / count) * 1000;
}

/** Reads the server's side while it runs (before it stops): its histograms cover the whole run. */
export async function serverBreakdown(serverUrl: string): Promise<Omit<Breakdown, 'functionMs'>> {
  const text = await (await fetch(`${serverUrl}/metrics`)).text();
  const statements = metric(text, 'secventory_commit_round_trip_seconds_count') ?? 0;
  const batches = metric(text, 'secventory_batch_commit_duration_seconds_count') ?? 0;
  return {
    statements,
    batchesPerStatement: statements === 0 ? 0 : batches / statements,
    queuedMs: meanMs(text, 'secventory_commit_queue_wait_seconds'),
    roundTripMs: meanMs(text, 'secventory_commit_round_trip_seconds'),
    batchCommitMs: meanMs(text, 'secventory_batch_commit_duration_seconds'),
    eventLoopMeanMs: (metric(text, 'nodejs_eventloop_lag_mean_seconds') ?? 0) * 1000,
    eventLoopP99Ms: (metric(text, 'nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000,
  };
}

/**
 * PostgreSQL's time inside the commit function, per call. Read after the server stopped: a
 * backend reports its function statistics when it goes idle or exits.
 */
export async function functionMsMean(databaseUrl: string): Promise<number | null> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ calls: string; total_time: number }>(
      `select calls, total_time from pg_stat_user_functions where funcname = 'secventory_commit_batches'`,
    );
    const row = rows[0];
    return row === undefined || Number(row.calls) === 0 ? null : row.total_time / Number(row.calls);
  } finally {
    await client.end();
  }
}

/** One markdown row per scenario: the pieces of a batch's commit, in ms. */
export function breakdownTable(rows: readonly { scenario: string; breakdown: Breakdown | null }[]): string {
  const f = (n: number | null, d = 1) => (n === null ? 'n/a' : n.toFixed(d));
  const lines = [
    '| scenario | statements | batches/statement | batch commit ms | queued ms | statement round trip ms | in the function ms | round trip outside it ms | event-loop delay mean / p99 ms |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const { scenario, breakdown: b } of rows) {
    if (b === null) continue;
    const outside = b.functionMs === null ? null : b.roundTripMs - b.functionMs;
    lines.push(
      `| ${scenario} | ${b.statements} | ${f(b.batchesPerStatement)} | ${f(b.batchCommitMs)} | ${f(b.queuedMs)} | ` +
        `${f(b.roundTripMs)} | ${f(b.functionMs)} | ${f(outside)} | ${f(b.eventLoopMeanMs)} / ${f(b.eventLoopP99Ms)} |`,
    );
  }
  return lines.join('\n');
}
