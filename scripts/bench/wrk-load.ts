// The timed scenarios driven by wrk: one Lua script per scenario under scripts/bench/wrk/, which
// counts statuses and times every request itself and prints one JSON line from done().
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runKeyPrefix } from './keys.ts';
import type { LoadResult } from './load-result.ts';
import {
  cartLines,
  cartSkuCount,
  lowConnections,
  lowRequestsPerSecond,
  mixedSkuCount,
  spreadSkuCount,
  type ScenarioOptions,
  type TimedScenarioName,
} from './workload.ts';

const scriptDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'wrk');
const timeoutS = 30;
/**
 * wrk threads. Measured on the 2-core bench machine: hot, 1000 connections, 8 s, three rounds of
 * -t1 then -t2 (npm run bench): 3,466 / 3,537, 5,732 / 5,309, 7,595 / 6,031 successful req/s,
 * p99 838 / 1,339, 523 / 891, 300 / 924 ms. The rounds differ by the disk (commit 168, 104, 81
 * ms); within a round one thread was 2% behind, 8% and 26% ahead, and always had the lower tail:
 * a second wrk thread takes CPU from the server and its PostgreSQL. wrk used ~1 s of CPU per 8 s.
 */
export const wrkThreadsDefault = 1;
/** wrk's stdout is its summary and our JSON line: a few kilobytes. Anything larger is a fault. */
const stdoutBytesMax = 1024 * 1024;

/** The line done() in common.lua prints. */
interface WrkReport {
  threads: number;
  requests: number;
  durationUs: number;
  latencySamples: number;
  answersWithoutKey: number;
  requestsLost: number;
  stockChanges: number;
  fillers: number;
  latencyUs: { p50: number; p99: number; p999: number; max: number };
  wrkCorrectedLatencyUs: { p50: number; p99: number; p999: number; max: number };
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  statusCounts: Record<string, number>;
}

export interface WrkOptions extends ScenarioOptions {
  readonly threads: number;
}

/** The script, its arguments after the key prefix, and the connections for a scenario. */
function plan(
  scenario: TimedScenarioName,
  options: WrkOptions,
): { script: string; args: string[]; connections: number; threads: number } {
  switch (scenario) {
    case 'hot':
      return { script: 'hot.lua', args: [], connections: options.connections, threads: options.threads };
    case 'spread':
      return {
        script: 'spread.lua',
        args: [String(spreadSkuCount)],
        connections: options.connections,
        threads: options.threads,
      };
    case 'mixed':
      return {
        script: 'mixed.lua',
        args: [String(mixedSkuCount)],
        connections: options.connections,
        threads: options.threads,
      };
    case 'carts':
      return {
        script: 'carts.lua',
        args: [String(cartSkuCount), String(cartLines)],
        connections: options.connections,
        threads: options.threads,
      };
    case 'low':
      // A few connections at a steady offered rate; one thread paces them all.
      return { script: 'low.lua', args: [String(lowRequestsPerSecond)], connections: lowConnections, threads: 1 };
  }
}

export async function runWrk(scenario: TimedScenarioName, url: string, options: WrkOptions): Promise<LoadResult> {
  const p = plan(scenario, options);
  const threads = Math.min(p.threads, p.connections);
  const args = [
    `-t${threads}`,
    `-c${p.connections}`,
    `-d${options.durationS}s`,
    '--timeout',
    `${timeoutS}s`,
    '--latency',
    '-s',
    path.join(scriptDir, p.script),
    url,
    '--',
    runKeyPrefix('wrk'),
    ...p.args,
  ];
  const { stdout, stderr } = await runProcess('wrk', args, options);
  const line = stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"threads":'));
  if (line === undefined) throw new Error(`wrk printed no result line (wrk ${args.join(' ')}):\n${stdout}\n${stderr}`);
  if (process.env.BENCH_VERBOSE) process.stderr.write(stdout);
  return toLoadResult(JSON.parse(line) as WrkReport);
}

function toLoadResult(r: WrkReport): LoadResult {
  // Pairs: wrk's own count of answers against the scripts' counts, so a lost thread or a
  // broken aggregation in done() cannot pass unnoticed.
  const statusTotal = Object.values(r.statusCounts).reduce((a, b) => a + b, 0);
  if (statusTotal !== r.requests)
    throw new Error(`wrk: status counts add up to ${statusTotal}, wrk counted ${r.requests} answers`);
  if (r.latencySamples + r.answersWithoutKey !== r.requests) {
    throw new Error(
      `wrk: ${r.latencySamples} latency samples + ${r.answersWithoutKey} without key != ${r.requests} answers`,
    );
  }
  if (r.answersWithoutKey > 0)
    process.stderr.write(
      `wrk: ${r.answersWithoutKey} answers carried no x-request-id; their latency is not in the figures\n`,
    );
  const durationS = r.durationUs / 1e6;
  return {
    generator: 'wrk',
    requests: r.requests,
    durationS,
    requestsPerSecond: r.requests / durationS,
    succeededPerSecond: r.stockChanges / durationS,
    latencyMsP50: r.latencyUs.p50 / 1000,
    latencyMsP99: r.latencyUs.p99 / 1000,
    latencyMsP999: r.latencyUs.p999 / 1000,
    latencyMsMax: r.latencyUs.max / 1000,
    statusCounts: r.statusCounts,
    fillers: r.fillers,
    errors: r.errors.connect + r.errors.read + r.errors.write,
    timeouts: r.errors.timeout,
  };
}

/** Runs a command to its end, ticking once a second; its stderr passes through. */
function runProcess(
  command: string,
  args: string[],
  options: ScenarioOptions,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (stdout.length < stdoutBytesMax) stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < stdoutBytesMax) stderr += chunk;
      process.stderr.write(chunk);
    });
    let seconds = 0;
    const ticker = setInterval(() => options.onTick?.(++seconds), 1000);
    child.on('error', (error) => {
      clearInterval(ticker);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearInterval(ticker);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}:\n${stdout}\n${stderr}`));
    });
  });
}
