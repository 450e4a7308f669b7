import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import { serveNodeFlags } from '../../src/runtime-flags.ts';
import { sleep, waitUntil } from './wait.ts';

// The one way the tests, the proof and the bench run a server as its own process: Node with the
// service's runtime flags, as `npm start` runs it (package.json "start"), with nothing of the
// caller's environment but what it passes, and stopped by pid, also after a failure.

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** What `npm start` runs after Node's flags. */
export const serveArgs: readonly string[] = [path.join(repoRoot, 'bin/secventory.js'), 'serve'];

/** A server has this long to answer GET /health/ready 200 after it was spawned. */
const readyMsMax = 30_000;
/** A graceful stop (SIGTERM: drain HTTP, actors, pool) gets this long before SIGKILL. */
const graceMsDefault = 10_000;
/** The server's last lines kept for a failure message. */
const recentLinesMax = 200;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const clockTicksPerSecond = 100;
const rssSampleIntervalMs = 200;

export interface ServerOptions {
  /** How messages and logs name it ('app #2'); 'server' when omitted. */
  readonly name?: string;
  /** The script and its arguments after Node's flags; `bin/secventory.js serve` when omitted. */
  readonly args?: readonly string[];
  /** The server's environment, over PATH, HOME, TMPDIR, HOST=127.0.0.1, PORT and LOG_LEVEL=warn. */
  readonly env: Readonly<Record<string, string>>;
  /** A fixed port, so that a restarted server answers on the same URL; a free one when omitted. */
  readonly port?: number;
  /** Node or V8 flags after the service's own (a later flag wins). */
  readonly extraNodeFlags?: readonly string[];
  /** Told every line the server writes. Both pipes are read continuously in any case: pino writes
   *  synchronously, so a full pipe would stall the server's event loop. */
  readonly onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Told the process as soon as it exists, before it is ready: to register its stop, so that an
   *  interrupted start leaves nothing behind. */
  readonly onSpawned?: (server: ServerProcess) => void;
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

/** Only what a server needs: nothing of the caller's environment may change what is measured. */
function serverEnv(port: number, env: Readonly<Record<string, string>>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? os.tmpdir(),
    ...(process.env.TMPDIR === undefined ? {} : { TMPDIR: process.env.TMPDIR }),
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    ...env,
  };
}

async function answersReady(url: string): Promise<boolean> {
  try {
    const res = await request(`${url}/health/ready`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/** A server running as its own process on a loopback port. */
export class ServerProcess {
  private readonly recent: string[] = [];
  private readonly exited: Promise<void>;
  private rssMax = 0;
  private readonly sampler: NodeJS.Timeout;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    readonly url: string,
    onLine: ServerOptions['onLine'],
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: child[stream]! }).on('line', (line) => {
        this.recent.push(line);
        if (this.recent.length > recentLinesMax) this.recent.shift();
        onLine?.(line, stream);
      });
    }
    this.sampler = setInterval(() => (this.rssMax = Math.max(this.rssMax, rssOf(this.pid))), rssSampleIntervalMs);
    this.sampler.unref();
    void this.exited.then(() => clearInterval(this.sampler));
  }

  /** Spawns the server and returns once GET /health/ready answers 200; kills it if it never does. */
  static async start(options: ServerOptions): Promise<ServerProcess> {
    const port = options.port ?? (await freePort());
    const args = [...serveNodeFlags, ...(options.extraNodeFlags ?? []), ...(options.args ?? serveArgs)];
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: serverEnv(port, options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new ServerProcess(options.name ?? 'server', child, `http://127.0.0.1:${port}`, options.onLine);
    options.onSpawned?.(server);
    try {
      await waitUntil(
        async () => {
          if (!server.running) {
            const how = `code ${child.exitCode}, signal ${child.signalCode}`;
            throw new Error(`${server.name} exited while starting (${how}):\n${server.recentOutput()}`);
          }
          return answersReady(server.url);
        },
        readyMsMax,
        `${server.name} answered /health/ready on ${server.url}`,
        100,
      );
    } catch (error) {
      await server.kill();
      throw error;
    }
    return server;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The exit code once it has exited by itself or on SIGTERM; null while running or when killed. */
  get exitCode(): number | null {
    return this.child.exitCode;
  }

  /** The server's last lines, stdout and stderr interleaved, for a failure message. */
  recentOutput(lines = 40): string {
    return this.recent.slice(-lines).join('\n');
  }

  /** Resident set size now, in bytes; 0 once it has exited. */
  rssBytes(): number {
    return rssOf(this.pid);
  }

  /** Highest resident set size seen so far, in bytes. */
  rssMaxBytes(): number {
    return Math.max(this.rssMax, this.rssBytes());
  }

  /** CPU time (user + system) the server has used so far, in seconds; 0 once it has exited. */
  cpuSeconds(): number {
    return cpuSecondsOf(this.pid);
  }

  /** SIGKILL: no shutdown, no draining; whatever was in flight is lost. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Graceful (SIGTERM), bounded: SIGKILL to this pid when it has not exited within graceMsMax. */
  async stop(graceMsMax = graceMsDefault): Promise<'graceful' | 'killed' | 'not running'> {
    if (!this.running) return 'not running';
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(graceMsMax)]);
    if (!this.running) return 'graceful';
    await this.kill();
    return 'killed';
  }
}

/** Runs `secventory serve` on `databaseUrl` as its own process (a load generator must not share its CPU). */
export function startServerProcess(databaseUrl: string, env: Record<string, string>): Promise<ServerProcess> {
  return startNodeServer(serveArgs, { DATABASE_URL: databaseUrl, ...env });
}

/**
 * Runs a Node HTTP server script (`args` after Node's flags) as its own process with the service's
 * runtime flags, on a free loopback port passed as PORT, once GET /health/ready answers 200. Its
 * stderr reaches this process's stderr.
 */
export function startNodeServer(args: readonly string[], env: Record<string, string>): Promise<ServerProcess> {
  // BENCH_PROFILE=1 writes a CPU profile of the server to reports/profiles/ when it stops.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir=reports/profiles'] : [];
  // BENCH_NODE_FLAGS adds Node/V8 flags after the service's own (a later flag wins), to try a
  // runtime setting side by side, e.g. BENCH_NODE_FLAGS='--max-semi-space-size=8 --trace-gc'.
  const extra = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((flag) => flag !== '');
  return ServerProcess.start({
    args,
    env,
    extraNodeFlags: [...extra, ...profile],
    onLine: (line, stream) => {
      if (stream === 'stderr') process.stderr.write(`${line}\n`);
    },
  });
}
