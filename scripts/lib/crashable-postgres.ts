import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedServer, freePort } from '../../src/persistence/embedded-postgres.ts';
import { postgresProcesses, signalPostgres } from './postgres-processes.ts';
import { sleep, waitUntil } from './wait.ts';

/** PostgreSQL's own log lines kept (crash recovery says what it did; a failure shows the end). */
const logLinesMax = 2_000;
/** A polite stop gets this long before what is left is killed. */
const stopMsMax = 5_000;
/** Every process of a killed server is gone within this long, or the machine is in trouble. */
const killMsMax = 10_000;

/** Gone, or a zombie (dead, holding nothing, waiting to be reaped). */
function exited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/**
 * A PostgreSQL of its own that the proof and the chaos tests crash on purpose: a fresh data
 * directory, a fixed loopback port, fsync on. It can be killed (SIGKILL to the postmaster and
 * every backend), frozen (SIGSTOP) and started again on the same directory and port, as an
 * operator's supervisor would, so the app sees the same URL come back after crash recovery.
 */
export class CrashablePostgres {
  private server: EmbeddedServer;
  private readonly logLines: { atMs: number; line: string }[] = [];
  private frozen = false;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly databaseName: string,
  ) {
    this.server = this.newServer();
  }

  /** Starts a new server in a fresh directory under os.tmpdir() and creates `databaseName`. */
  static async start(dirPrefix: string, databaseName: string): Promise<CrashablePostgres> {
    // Under os.tmpdir() and 0755: as root, initdb and the server run as a created user that must
    // be able to reach the data directory.
    const dir = await mkdtemp(path.join(os.tmpdir(), dirPrefix));
    await chmod(dir, 0o755);
    const db = new CrashablePostgres(dir, await freePort(), databaseName);
    try {
      await db.server.start();
      await db.server.ensureDatabase(databaseName);
    } catch (error) {
      await db.destroy();
      throw error;
    }
    return db;
  }

  private newServer(): EmbeddedServer {
    return new EmbeddedServer({
      dataDir: path.join(this.dir, 'pg'),
      port: this.port,
      // fsync and synchronous_commit on: an acknowledged commit must survive the crash because its
      // WAL is on disk, as in production, not because the OS happened to keep a dirty page.
      settings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on', max_connections: '100' },
      // One message from embedded-postgres may hold several log lines.
      log: (message) => {
        for (const line of message.split('\n')) {
          if (line.trim() !== '') this.logLines.push({ atMs: Date.now(), line });
        }
        if (this.logLines.length > logLinesMax) this.logLines.splice(0, this.logLines.length - logLinesMax);
      },
    });
  }

  /** The database the app uses. */
  get url(): string {
    return this.server.urlFor(this.databaseName);
  }

  /** The server's maintenance database, for creating more databases. */
  get adminUrl(): string {
    return this.server.url;
  }

  /** PostgreSQL's log lines logged at or after `sinceMs` (epoch milliseconds). */
  logSince(sinceMs: number): string[] {
    return this.logLines.filter((l) => l.atMs >= sinceMs).map((l) => l.line);
  }

  /** The last lines PostgreSQL logged, for a failure message. */
  recentLog(lines = 30): string {
    return this.logLines
      .slice(-lines)
      .map((l) => l.line)
      .join('\n');
  }

  /** The postmaster and every backend; empty when the server is gone. */
  processes(): number[] {
    return postgresProcesses(this.server);
  }

  /** A crash: SIGKILL to the postmaster and every backend at once. Returns when all are gone. */
  async kill(): Promise<number[]> {
    const pids = signalPostgres(this.server, 'SIGKILL');
    // By pid: a backend whose postmaster died is no longer below it in the process tree.
    await waitUntil(() => pids.every(exited), killMsMax, 'every PostgreSQL process exited after SIGKILL');
    return pids;
  }

  /** SIGSTOP to the postmaster and every backend: the server hangs, connections stay open. */
  freeze(): number[] {
    this.frozen = true;
    return signalPostgres(this.server, 'SIGSTOP');
  }

  thaw(): number[] {
    this.frozen = false;
    return signalPostgres(this.server, 'SIGCONT');
  }

  /** Starts PostgreSQL again on the same data directory and port; crash recovery replays the WAL. */
  async restart(): Promise<void> {
    this.server = this.newServer();
    await this.server.start();
  }

  /** Bounded and always safe: wakes a frozen server, stops it politely, then kills what is left. */
  async stop(): Promise<void> {
    if (this.frozen) this.thaw();
    if (this.processes().length === 0) return;
    await Promise.race([this.server.stop(), sleep(stopMsMax)]);
    if (this.processes().length > 0) await this.kill();
  }

  /** Stops the server and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
