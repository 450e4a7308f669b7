// npm run bench -- --scenario hot|spread|mixed|burst|low|carts|import|all (or a list: hot,carts) --connections N --duration S
//                   [--generator wrk|autocannon] [--wrk-threads N] [--compare-batch1] [--ceiling] [--streams N]
// Starts the server as its own process on its own embedded PostgreSQL (fsync on) or DATABASE_URL,
// drives it with a real HTTP load generator (wrk when it is on PATH, else autocannon; burst always
// undici), checks correctness afterwards, and writes reports/bench-<timestamp>.json and .md.
import { mkdir, mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { Command } from 'commander';
import pg from 'pg';
import { EmbeddedServer } from '../src/persistence/embedded-postgres.ts';
import { breakdownTable, functionMsMean, serverBreakdown, timeFunctions, type Breakdown } from './bench/breakdown.ts';
import { checkCorrectness, commitMsMean, type Correctness } from './bench/correctness.ts';
import type { ImportResult } from './bench/import.ts';
import { chooseGenerator, type TimedGeneratorName } from './bench/generator.ts';
import type { GeneratorName } from './bench/load-result.ts';
import { StreamReaders, type StreamFigures } from './bench/stream-readers.ts';
import { wrkThreadsDefault } from './bench/wrk-load.ts';
import { importProductCount } from './bench/workload.ts';
import { startNodeServer, startServerProcess } from './lib/server-process.ts';
import {
  cartLines,
  cartSkuCount,
  createProducts,
  lowConnections,
  productsFor,
  runBurst,
  runImport,
  runScenario,
  scenarioNames,
  type LoadResult,
  type ScenarioName,
} from './bench/scenarios.ts';

interface Row {
  scenario: string;
  generator: GeneratorName;
  batchSizeMax: number;
  connections: number;
  /** Reservation lines per successful request: the lines of a cart, 1 otherwise. */
  linesPerRequest: number;
  load: LoadResult;
  correctness: Correctness;
  commitMsMean: number | null;
  rssMaxMb: number;
  /** The server's CPU time over the load, as a share of one core (100 = one core busy). */
  serverCpuPercent: number;
  /** Where a batch's commit time goes (null when the server did not expose it). */
  breakdown: Breakdown | null;
  /** GET /events/stream readers during the load (--streams); null when there were none. */
  streams: StreamFigures | null;
}

const program = new Command('bench')
  .option('--scenario <names>', `one of ${scenarioNames.join(', ')}, a comma-separated list of them, or all`, 'hot')
  .option('--connections <n>', 'concurrent connections', (v) => Number(v), 1000)
  .option('--duration <s>', 'seconds per scenario', (v) => Number(v), 10)
  .option('--batch-size <n>', 'SECVENTORY_BATCH_SIZE_MAX for the server', (v) => Number(v))
  .option('--generator <name>', 'wrk or autocannon (default: wrk when it is on PATH)')
  .option('--wrk-threads <n>', 'wrk threads', (v) => Number(v), wrkThreadsDefault)
  .option('--compare-batch1', 'run the same scenario again with batchSizeMax = 1 and print the ratio')
  .option(
    '--streams <n>',
    'run each scenario again with N clients following GET /events/stream and reading everything',
    (v) => Number(v),
    0,
  )
  .option(
    '--ceiling',
    'first measure the HTTP ceiling: the hot load on the same route answered without engine or database',
  )
  .parse();
const opts = program.opts<{
  scenario: string;
  connections: number;
  duration: number;
  batchSize?: number;
  compareBatch1?: boolean;
  ceiling?: boolean;
  generator?: string;
  wrkThreads: number;
  streams: number;
}>();

/** The hot load against scripts/bench/http-ceiling-server.ts: one Node process doing only the HTTP work. */
interface Ceiling {
  readonly load: LoadResult;
  readonly serverCpuPercent: number;
}

async function main() {
  const scenarios = (opts.scenario === 'all' ? [...scenarioNames] : opts.scenario.split(',')) as ScenarioName[];
  for (const s of scenarios) if (!scenarioNames.includes(s)) throw new Error(`unknown scenario ${s}`);
  // burst and import send their requests from this process: no load generator is needed.
  const generator = scenarios.every((s) => s === 'burst' || s === 'import')
    ? 'autocannon'
    : chooseGenerator(opts.generator);

  let embedded: EmbeddedServer | undefined;
  let tmp: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (adminUrl === undefined || adminUrl === '') {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'secventory-bench-'));
    await chmod(tmp, 0o755);
    // fsync stays on: the figures are for durable acknowledgements.
    embedded = new EmbeddedServer({ dataDir: path.join(tmp, 'pg'), settings: { max_connections: '200' } });
    await embedded.start();
    adminUrl = embedded.socketUrlFor('postgres');
  }
  const rows: Row[] = [];
  let ceiling: Ceiling | null = null;
  try {
    if (opts.ceiling) ceiling = await runCeiling(generator);
    let runNo = 0;
    for (const scenario of scenarios) {
      const sizes = [opts.batchSize ?? 512, ...(opts.compareBatch1 ? [1] : [])];
      for (const batchSizeMax of sizes) {
        // With --streams, the same run again beside it, with the readers: side by side in the table.
        for (const streams of opts.streams > 0 && scenario !== 'burst' ? [0, opts.streams] : [0]) {
          const database = `bench_${scenario}_${++runNo}`;
          rows.push(await runOne(adminUrl, database, { scenario, batchSizeMax, generator, streams }));
        }
      }
    }
  } finally {
    await embedded?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
  await report(rows, ceiling, generator);
}

async function runCeiling(generator: TimedGeneratorName): Promise<Ceiling> {
  const server = await startNodeServer(['--import', 'tsx', path.resolve('scripts/bench/http-ceiling-server.ts')], {});
  try {
    process.stderr.write(
      `\nHTTP ceiling (hot load, ${opts.connections} connections, ${opts.duration} s, ${generator}; no engine, no database)\n`,
    );
    const cpuBeforeS = server.cpuSeconds();
    const bar = new SingleBar({ format: '  {bar} {value}/{total} s', clearOnComplete: true }, Presets.shades_classic);
    bar.start(opts.duration, 0);
    const load = await runScenario('hot', server.url, {
      generator,
      wrkThreads: opts.wrkThreads,
      connections: opts.connections,
      durationS: opts.duration,
      onTick: (s) => bar.update(Math.min(s, opts.duration)),
    });
    bar.stop();
    return { load, serverCpuPercent: ((server.cpuSeconds() - cpuBeforeS) / load.durationS) * 100 };
  } finally {
    await server.stop();
  }
}

interface RunPlan {
  readonly scenario: ScenarioName;
  readonly batchSizeMax: number;
  readonly generator: TimedGeneratorName;
  /** Clients following GET /events/stream during the load; 0 for none. */
  readonly streams: number;
}

async function createDatabase(adminUrl: string, database: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${database}`);
  await admin.query(`create database ${database}`);
  await timeFunctions(admin, database);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function eventsCommitted(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<{ n: number }>('select count(*)::int as n from inventory_events')).rows[0]!.n;
  } finally {
    await client.end();
  }
}

async function runOne(adminUrl: string, database: string, plan: RunPlan): Promise<Row> {
  const { scenario, batchSizeMax, generator } = plan;
  const databaseUrl = await createDatabase(adminUrl, database);
  const server = await startServerProcess(databaseUrl, {
    SECVENTORY_BATCH_SIZE_MAX: String(batchSizeMax),
    SECVENTORY_MAILBOX_LENGTH_MAX: '100000',
  });
  try {
    await createProducts(server.url, productsFor(scenario));
    const readers = plan.streams > 0 ? await StreamReaders.open(server.url, plan.streams) : null;
    const driver = scenario === 'burst' || scenario === 'import' ? 'undici' : generator;
    const connections = scenario === 'low' ? lowConnections : opts.connections;
    const withStreams = readers === null ? '' : `, ${plan.streams} event streams`;
    const what = `${connections} connections, ${opts.duration} s, ${driver}${withStreams}`;
    process.stderr.write(`\n${scenario} (batchSizeMax ${batchSizeMax}, ${what})\n`);
    let load: LoadResult;
    const cpuBeforeS = server.cpuSeconds();
    if (scenario === 'burst') {
      load = await runBurst(server.url, opts.connections);
    } else if (scenario === 'import') {
      load = await runImport(server.url);
    } else {
      const bar = new SingleBar({ format: '  {bar} {value}/{total} s', clearOnComplete: true }, Presets.shades_classic);
      bar.start(opts.duration, 0);
      load = await runScenario(scenario, server.url, {
        generator,
        wrkThreads: opts.wrkThreads,
        connections: opts.connections,
        durationS: opts.duration,
        onTick: (s) => bar.update(Math.min(s, opts.duration)),
      });
      bar.stop();
    }
    const serverCpuPercent = ((server.cpuSeconds() - cpuBeforeS) / load.durationS) * 100;
    const streams = readers === null ? null : await readers.finish(await eventsCommitted(databaseUrl));
    const commitMs = await commitMsMean(server.url);
    const fromServer = await serverBreakdown(server.url).catch(() => null);
    const rssMaxMb = server.rssMaxBytes() / 1024 / 1024;
    await server.stop();
    const breakdown = fromServer === null ? null : { ...fromServer, functionMs: await functionMsMean(databaseUrl) };
    const correctness = await checkCorrectness(databaseUrl);
    return {
      scenario: readers === null ? scenario : `${scenario} +${plan.streams} streams`,
      generator: load.generator,
      batchSizeMax,
      connections,
      linesPerRequest: scenario === 'carts' ? cartLines : 1,
      load,
      correctness,
      commitMsMean: commitMs,
      rssMaxMb,
      serverCpuPercent,
      breakdown,
      streams,
    };
  } finally {
    await server.stop();
  }
}

function table(rows: Row[]): string {
  const f = (n: number | null, d = 0) => (n === null ? 'n/a' : n.toFixed(d));
  const lines = [
    '| scenario | generator | batchSizeMax | conns | req/s | ok/s | p50 ms | p99 ms | p999 ms | non-2xx | errors | mean batch | commit ms | server CPU % | RSS max MB | oversold | sums | oracle | verify |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const non2xx =
      Object.entries(r.load.statusCounts)
        .filter(([c]) => !c.startsWith('2'))
        .map(([c, n]) => `${c}:${n}`)
        .join(' ') || '0';
    lines.push(
      `| ${r.scenario} | ${r.generator} | ${r.batchSizeMax} | ${r.connections} | ${f(r.load.requestsPerSecond)} | ${f(r.load.succeededPerSecond)} | ${f(r.load.latencyMsP50, 1)} | ${f(r.load.latencyMsP99, 1)} | ${f(r.load.latencyMsP999, 1)} | ${non2xx} | ${r.load.errors + r.load.timeouts} | ${f(r.correctness.meanBatchSize, 1)} | ${f(r.commitMsMean, 2)} | ${f(r.serverCpuPercent)} | ${f(r.rssMaxMb)} | ${r.correctness.oversoldProducts} | ${r.correctness.countersNotEqualSums === 0 ? 'equal' : `${r.correctness.countersNotEqualSums} differ`} | ${r.correctness.oracleViolations.length === 0 ? 'pass' : `FAIL (${r.correctness.oracleViolations.length})`} | ${r.correctness.verifyOk === null ? 'n/a' : r.correctness.verifyOk ? 'pass' : `FAIL (${r.correctness.verifyViolations})`} |`,
    );
  }
  return lines.join('\n');
}

/** Each load without and with event stream readers, side by side (--streams). */
function streamTable(rows: Row[]): string {
  const f = (n: number, d = 0) => n.toFixed(d);
  const header = [
    'scenario',
    'streams',
    'ok/s',
    'p50 ms',
    'p99 ms',
    'server CPU %',
    'RSS max MB',
    'events per stream (slowest / committed)',
    'streams caught up after',
    'MB sent to streams',
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${'---|'.repeat(header.length)}`];
  for (const r of rows) {
    const s = r.streams;
    const events = s === null ? '-' : `${s.eventsPerStreamMin} / ${s.eventsCommitted}`;
    const caughtUp = s === null ? '-' : s.caughtUpS === null ? 'not within 120 s' : `${f(s.caughtUpS, 1)} s`;
    const cells = [
      r.scenario,
      s?.streams ?? 0,
      f(r.load.succeededPerSecond),
      f(r.load.latencyMsP50, 1),
      f(r.load.latencyMsP99, 1),
      f(r.serverCpuPercent),
      f(r.rssMaxMb),
      events,
      caughtUp,
      s === null ? '-' : f(s.bytesTotal / 1e6, 1),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Carts and their lines per second: the figures a cart load is read by. */
function cartLine(r: Row): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const cartsPerSecond = r.load.succeededPerSecond;
  return (
    `carts (${r.linesPerRequest} lines of 1 unit over ${n(cartSkuCount)} SKUs, ${n(r.connections)} connections, ` +
    `batchSizeMax ${r.batchSizeMax}): ` +
    `${n(cartsPerSecond)} carts/s = ${n(cartsPerSecond * r.linesPerRequest)} lines/s, ` +
    `p50 ${r.load.latencyMsP50.toFixed(1)} ms, p99 ${r.load.latencyMsP99.toFixed(1)} ms`
  );
}

/** Products per second, and whether every product of the import was created: what an import is read by. */
function importLine(r: Row): string {
  const load = r.load as ImportResult;
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  return (
    `import (${n(load.requests)} calls of ${n(load.callSize)} products through POST /products/bulk, ` +
    `${load.concurrency} at a time): ${n(load.productsCreated)} products created in ${load.durationS.toFixed(2)} s = ` +
    `${n(load.productsPerSecond)} products/s; per call p50 ${load.latencyMsP50.toFixed(0)} ms, ` +
    `p99 ${load.latencyMsP99.toFixed(0)} ms; oracle ${r.correctness.oracleViolations.length === 0 ? 'pass' : 'FAIL'}, ` +
    `verify ${r.correctness.verifyOk === true ? 'pass' : 'FAIL'}`
  );
}

/** An import that did not create every product it sent is a failed run, whatever its speed. */
function importIncomplete(r: Row): boolean {
  return r.scenario === 'import' && (r.load as ImportResult).productsCreated !== importProductCount;
}

async function report(rows: Row[], ceiling: Ceiling | null, generator: TimedGeneratorName) {
  const md = [table(rows)];
  if (ceiling !== null) {
    const c = ceiling.load;
    md.push(
      '',
      '| HTTP ceiling (same route, no engine, no database) | req/s | p50 ms | p99 ms | server CPU % |',
      '|---|---|---|---|---|',
      `| hot load, ${opts.connections} conns | ${c.requestsPerSecond.toFixed(0)} | ${c.latencyMsP50.toFixed(1)} | ${c.latencyMsP99.toFixed(1)} | ${ceiling.serverCpuPercent.toFixed(0)} |`,
    );
    const hot = rows.find((r) => r.scenario === 'hot' && r.batchSizeMax !== 1);
    if (hot)
      md.push(
        `\nhot: durable reservations / HTTP ceiling = ${((hot.load.succeededPerSecond / c.requestsPerSecond) * 100).toFixed(0)}% (${hot.load.succeededPerSecond.toFixed(0)} of ${c.requestsPerSecond.toFixed(0)} per second)`,
      );
  }
  for (const scenario of new Set(rows.map((r) => r.scenario))) {
    const batched = rows.find((r) => r.scenario === scenario && r.batchSizeMax !== 1);
    const single = rows.find((r) => r.scenario === scenario && r.batchSizeMax === 1);
    if (batched && single) {
      md.push(
        `\n${scenario}: batched / batchSizeMax=1 = ${(batched.load.succeededPerSecond / single.load.succeededPerSecond).toFixed(1)}x successful reservations per second`,
      );
    }
  }
  for (const r of rows.filter((row) => row.scenario === 'carts')) md.push('', cartLine(r));
  for (const r of rows.filter((row) => row.scenario === 'import')) md.push('', importLine(r));
  md.push('', "Where a batch's commit time goes (means over the run):", '', breakdownTable(rows));
  if (rows.some((r) => r.streams !== null)) md.push('', streamTable(rows));
  const text = md.join('\n');
  console.log(`\n${text}\n`);
  await mkdir('reports', { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const wrk = generator === 'wrk' ? { threads: opts.wrkThreads } : null;
  await writeFile(
    `reports/bench-${stamp}.json`,
    JSON.stringify({ at: new Date().toISOString(), node: process.version, wrk, ceiling, rows }, null, 2),
  );
  await writeFile(`reports/bench-${stamp}.md`, `${text}\n`);
  const bad = rows.filter(
    (r) =>
      r.correctness.oracleViolations.length > 0 ||
      r.correctness.verifyOk === false ||
      r.correctness.reservations < (r.load.statusCounts['201'] ?? 0) ||
      importIncomplete(r),
  );
  for (const r of rows) {
    for (const v of r.correctness.oracleViolations.slice(0, 5)) {
      console.error(`${r.scenario}: ${v.guarantee} ${v.sku}: ${v.message}`);
    }
    if (importIncomplete(r)) {
      const load = r.load as ImportResult;
      console.error(`import: ${load.productsCreated} of ${importProductCount} products created`);
    }
    const created = r.load.statusCounts['201'] ?? 0;
    if (r.correctness.reservations < created) {
      const found = `${r.correctness.reservations} reservations`;
      console.error(`${r.scenario}: ${created} answers 201 but ${found}: requests shared an Idempotency-Key`);
    }
  }
  if (bad.length > 0) {
    console.error(`CORRECTNESS FAILED in ${bad.map((r) => r.scenario).join(', ')}`);
    process.exitCode = 1;
  }
}

await main();
