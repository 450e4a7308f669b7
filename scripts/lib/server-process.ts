import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import { serveNodeFlags } from '../../src/runtime-flags.ts';

export interface ServerProcess {
  readonly url: string;
  readonly pid: number;
  /** Highest resident set size seen so far, in bytes. */
  rssMaxBytes(): number;
  rssBytes(): number;
  /** CPU time (user + system) the server has used so far, in seconds; 0 once it has exited. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? 0 : Number(kb) * 1024;
  } catch {
    return 0;
  }
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const clockTicksPerSecond = 100;

function cpuSecondsOf(pid: number): number {
  try {
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
  } catch {
    return 0;
  }
}

/** Runs `secventory serve` as its own process (the load generator must not share its CPU time slice). */
export function startServerProcess(databaseUrl: string, env: Record<string, string>): Promise<ServerProcess> {
  return startNodeServer([path.resolve('bin/secventory.js'), 'serve'], { DATABASE_URL: databaseUrl, ...env });
}

/**
 * Runs a Node HTTP server script as its own process with the service's runtime flags, on a free
 * loopback port passed as PORT, and returns once GET /health/ready answers 200.
 */
export async function startNodeServer(args: readonly string[], env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  // BENCH_PROFILE=1 writes a CPU profile of the server to reports/profiles/ when it stops.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir=reports/profiles'] : [];
  // BENCH_NODE_FLAGS adds Node/V8 flags after the service's own (a later flag wins), to try a
  // runtime setting side by side, e.g. BENCH_NODE_FLAGS='--max-semi-space-size=8 --trace-gc'.
  const extra = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((flag) => flag !== '');
  const child: ChildProcess = spawn(process.execPath, [...serveNodeFlags, ...extra, ...profile, ...args], {
    env: { ...process.env, PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadlineMs = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/health/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadlineMs) throw new Error('the server did not become ready in 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  child.stdout!.resume();
  let rssMax = 0;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssOf(child.pid!))), 200);
  return {
    url,
    pid: child.pid!,
    rssMaxBytes: () => Math.max(rssMax, rssOf(child.pid!)),
    rssBytes: () => rssOf(child.pid!),
    cpuSeconds: () => cpuSecondsOf(child.pid!),
    stop: () => new Promise((resolve) => {
      clearInterval(sampler);
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
