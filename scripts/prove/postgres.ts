import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedServer, freePort } from '../../src/persistence/embedded-postgres.ts';
import type { Cleanup } from './cleanup.ts';
import { waitUntil } from './wait.ts';

export const databaseName = 'secventory';

/** Lines of PostgreSQL's own log kept for the report (crash recovery says what it did). */
const logLinesMax = 2_000;

/**
 * The proof's own PostgreSQL: a fresh directory, a fixed loopback port, fsync on. It can be
 * crashed (SIGKILL to the postmaster and every backend) and started again on the same data
 * directory and port, as an operator's supervisor would, so the app sees the same URL come back.
 */
export class ProofPostgres {
  private server: EmbeddedServer;
  private readonly logLines: { atMs: number; line: string }[] = [];

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    this.server = this.newServer();
  }

  static async start(cleanup: Cleanup): Promise<ProofPostgres> {
    // Under os.tmpdir() and 0755: as root, initdb and the server run as a created user that must
    // be able to reach the data directory.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'secventory-prove-'));
    cleanup.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
    await chmod(dir, 0o755);
    const db = new ProofPostgres(dir, await freePort());
    cleanup.add(`stop PostgreSQL on port ${db.port}`, () => db.stop());
    await db.server.start();
    await db.server.ensureDatabase(databaseName);
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

  get url(): string {
    return this.server.urlFor(databaseName);
  }

  /** PostgreSQL's log lines logged at or after `sinceMs`. */
  logSince(sinceMs: number): string[] {
    return this.logLines.filter((l) => l.atMs >= sinceMs).map((l) => l.line);
  }

  /** The postmaster and every backend; empty when the server is gone. */
  processes(): number[] {
    return this.server.processes();
  }

  /** A crash: SIGKILL to the postmaster and all its children at once. Returns when none is left. */
  async kill(): Promise<number[]> {
    const pids = this.server.signalAll('SIGKILL');
    await waitUntil(() => this.server.processes().length === 0, 10_000, 'every PostgreSQL process exited after SIGKILL');
    return pids;
  }

  /** Starts PostgreSQL again on the same data directory and port; crash recovery replays the WAL. */
  async restart(): Promise<void> {
    this.server = this.newServer();
    await this.server.start();
  }

  /** Bounded: a polite stop first, then SIGKILL to whatever of this server's processes is left. */
  async stop(): Promise<void> {
    if (this.server.processes().length === 0) return;
    await Promise.race([this.server.stop(), new Promise((resolve) => setTimeout(resolve, 5_000))]);
    if (this.server.processes().length > 0) await this.kill();
  }
}
