import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Agent, request } from 'undici';
import { expect } from 'vitest';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { CrashablePostgres } from '../../scripts/lib/crashable-postgres.ts';
import { sleep } from '../../scripts/lib/wait.ts';
import { waitUntil } from './database.ts';
import { databaseViolations } from './invariants.ts';

// The chaos tests' harness: a PostgreSQL of their own (fsync on, so a crash is a real crash), the
// app as a child process (`node bin/secventory.js serve`, as operators run it), an HTTP client
// that records every answer, and the checks every chaos test ends with. Everything is loopback
// and bounded in time, and everything started here is stopped by pid, also after a failure.

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** CHAOS_ROUNDS repeats each chaos scenario's kill/recover cycle (1 by default). */
export const chaosRounds = Math.max(1, Number(process.env.CHAOS_ROUNDS ?? 1));

export { sleep };

/** Prints a measured figure, so a run's output doubles as its report. */
export function report(scenario: string, figures: Record<string, number | string>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v) : v}`);
  console.log(`[chaos] ${scenario}: ${parts.join(' ')}`);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export const databaseName = 'secventory';

/** A PostgreSQL in a fresh directory that a test may kill, freeze and restart on the same port. */
export type ChaosDatabase = CrashablePostgres;

export function startChaosDatabase(): Promise<ChaosDatabase> {
  return CrashablePostgres.start('secventory-chaos-', databaseName);
}

// ---------------------------------------------------------------------------------------------
// The app as a child process

export interface AppEnv {
  readonly DATABASE_URL: string;
  readonly [name: string]: string;
}

/** `node bin/secventory.js serve`, on a fixed loopback port so clients can retry the same URL. */
export class AppProcess {
  private readonly output: string[] = [];
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    const keep = (chunk: Buffer) => {
      this.output.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      if (this.output.length > 200) this.output.splice(0, this.output.length - 200);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  static async start(env: AppEnv, port: number): Promise<AppProcess> {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/secventory.js'), 'serve'], {
      cwd: repoRoot,
      // Only what the app needs: nothing of the test runner's environment leaks into it.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? os.tmpdir(),
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'warn',
        SECVENTORY_SWEEP_INTERVAL_MS: '200',
        // CHAOS_DEBUG_HOOK: a module preloaded into the app (node --import), e.g. to trace what
        // made it die; its stderr lines reach recentOutput().
        ...(process.env.CHAOS_DEBUG_HOOK ? { NODE_OPTIONS: `--import ${process.env.CHAOS_DEBUG_HOOK}` } : {}),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const app = new AppProcess(child, `http://127.0.0.1:${port}`);
    try {
      await waitUntil(async () => {
        if (!app.running) throw new Error(`the app exited while starting:\n${app.recentOutput()}`);
        try {
          return (await request(`${app.url}/health/ready`, { headersTimeout: 2000, bodyTimeout: 2000 })).statusCode === 200;
        } catch {
          return false;
        }
      }, 30_000, 'the app answered /health/ready');
    } catch (error) {
      await app.kill();
      throw error;
    }
    return app;
  }

  recentOutput(): string {
    return this.output.slice(-40).join('\n');
  }

  /** SIGKILL: no shutdown, no draining; whatever was in flight is lost. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** A graceful stop, bounded: SIGTERM, then SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(10_000)]);
    await this.kill();
  }
}

/** The environment of an app that must turn a database outage into 503s quickly. */
export function shortTimeouts(databaseUrl: string): AppEnv {
  return {
    DATABASE_URL: databaseUrl,
    SECVENTORY_CONNECTION_TIMEOUT_MS: '1000',
    SECVENTORY_STATEMENT_TIMEOUT_MS: '1500',
    SECVENTORY_QUERY_TIMEOUT_MS: '1500',
  };
}

// ---------------------------------------------------------------------------------------------
// The client and its record of answers

export interface Answer {
  /** null: no HTTP answer at all (connection refused or reset, or the client's own timeout). */
  readonly status: number | null;
  readonly body: any;
  /** The answer carried `idempotent-replayed: true`: the key had been executed before. */
  readonly replayed: boolean;
  readonly startedAtMs: number;
  readonly latencyMs: number;
}

export type Operation =
  | { readonly kind: 'reserve'; readonly sku: string; readonly key: string; readonly quantity: number; readonly ttlSeconds: number }
  | { readonly kind: 'purchase' | 'cancel'; readonly sku: string; readonly key: string; readonly reservationId: string };

/** One request a client meant to make, and every answer it got for it (retries included). */
export interface Attempted {
  readonly op: Operation;
  readonly answers: Answer[];
}

/** A 2xx or a 4xx: the server decided, and a retry with the same key must get the same. */
export const isFinal = (a: Answer) => a.status !== null && a.status < 500;

export class ChaosClient {
  readonly attempted: Attempted[] = [];
  private readonly agent = new Agent({ connections: 128, keepAliveTimeout: 1_000, connect: { timeout: 2_000 } });

  constructor(public baseUrl: string) {}

  /** One HTTP request; never throws for a network failure (that is an answer with status null). */
  async http(method: 'GET' | 'POST', urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const startedAtMs = Date.now();
    const started = performance.now();
    try {
      const res = await request(`${this.baseUrl}${urlPath}`, {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.agent,
        // Far above every bound the tests assert: a hang shows up as a measured latency.
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      const text = await res.body.text();
      const parsed = text.length > 0 && String(res.headers['content-type'] ?? '').includes('json') ? JSON.parse(text) : text;
      const replayed = res.headers['idempotent-replayed'] === 'true';
      return { status: res.statusCode, body: parsed, replayed, startedAtMs, latencyMs: performance.now() - started };
    } catch (error) {
      return { status: null, body: String(error), replayed: false, startedAtMs, latencyMs: performance.now() - started };
    }
  }

  /** Sends an operation once and records the answer. */
  async send(entry: Attempted): Promise<Answer> {
    const { op } = entry;
    const answer = op.kind === 'reserve'
      ? await this.http('POST', `/products/${op.sku}/reservations`, { quantity: op.quantity, ttlSeconds: op.ttlSeconds }, { 'idempotency-key': op.key })
      : await this.http('POST', `/reservations/${op.reservationId}/${op.kind}`, undefined, { 'idempotency-key': op.key });
    entry.answers.push(answer);
    return answer;
  }

  start(op: Operation): Attempted {
    const entry: Attempted = { op, answers: [] };
    this.attempted.push(entry);
    return entry;
  }

  /** Retries every operation that has no final answer yet, with its key, until it has one. */
  async retryUnanswered(deadlineMs = 30_000): Promise<number> {
    const open = this.attempted.filter((e) => !e.answers.some(isFinal));
    const stopAtMs = Date.now() + deadlineMs;
    await Promise.all(open.map(async (entry) => {
      while (!isFinal(await this.send(entry))) {
        if (Date.now() > stopAtMs) throw new Error(`${entry.op.kind} ${entry.op.key} got no final answer in ${deadlineMs} ms: ${JSON.stringify(entry.answers.at(-1))}`);
        await sleep(100);
      }
    }));
    return open.length;
  }

  async createProduct(sku: string, stock: number): Promise<void> {
    const answer = await this.http('POST', '/products', { sku, name: sku, stock });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  }

  /** A reservation made before the chaos starts (so it is acknowledged). */
  async reserve(sku: string, quantity: number, ttlSeconds: number, key: string): Promise<Attempted> {
    const entry = this.start({ kind: 'reserve', sku, key, quantity, ttlSeconds });
    const answer = await this.send(entry);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    return entry;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The checks every chaos test ends with

/**
 * G5: every final answer the client saw is in the database with that outcome: a 201 reservation
 * exists as it was answered, a 200 purchase or cancel left the reservation in that status, and
 * the key's stored outcome renders the same body (also for a 409 rejection).
 */
export async function expectAcknowledgedDurable(sql: pg.Pool, attempted: readonly Attempted[]): Promise<number> {
  let checked = 0;
  for (const { op, answers } of attempted) {
    for (const answer of answers.filter(isFinal)) {
      checked++;
      const what = `${op.kind} ${op.key} answered ${answer.status}`;
      const { rows: [record] } = await sql.query(`select outcome from idempotency_records where sku = $1 and key = $2`, [op.sku, op.key]);
      expect(record, `${what}: its key is remembered`).toBeDefined();
      const outcome = record.outcome;
      if (answer.status === 201 || answer.status === 200) {
        expect(outcome.reservation, `${what}: the remembered outcome is the answer`).toEqual(answer.body);
        const { rows: [row] } = await sql.query(`select sku, quantity, status from reservations where id = $1`, [answer.body.id]);
        expect(row, `${what}: the reservation exists`).toBeDefined();
        expect({ sku: row.sku, quantity: row.quantity }).toEqual({ sku: answer.body.sku, quantity: answer.body.quantity });
        // A purchase or cancel is final; a reservation may have moved on since it was answered.
        if (op.kind !== 'reserve') expect(row.status, what).toBe(answer.body.status);
      } else if (answer.status === 409) {
        expect(outcome, what).toMatchObject({ kind: 'rejected', code: answer.body.code });
      }
    }
  }
  return checked;
}

/**
 * G2 after retries: every operation got exactly one outcome (all its final answers are the same
 * body), its key has one record and at most one effect event, and the reservations in the
 * database are exactly those some client was answered 201 for.
 */
export async function expectExactlyOnce(sql: pg.Pool, attempted: readonly Attempted[], skus: readonly string[]): Promise<void> {
  for (const { op, answers } of attempted) {
    const final = answers.filter(isFinal);
    expect(final.length, `${op.kind} ${op.key} has a final answer`).toBeGreaterThan(0);
    for (const a of final) expect({ status: a.status, body: a.body }, `${op.kind} ${op.key}`).toEqual({ status: final[0]!.status, body: final[0]!.body });
    const { rows } = await sql.query(
      `select type from inventory_events where sku = $1 and idempotency_key = $2 and type <> 'rejected' order by seq`, [op.sku, op.key]);
    // A reserve has one 'reserved'; a purchase past expiresAt an 'expired' (the rejection is not counted).
    expect(rows.length, `effect events of ${op.kind} ${op.key}: ${rows.map((r) => r.type).join(', ')}`).toBeLessThanOrEqual(1);
  }
  const answered = attempted.flatMap(({ op, answers }) => (op.kind === 'reserve' && answers.some((a) => a.status === 201) ? [answers.find((a) => a.status === 201)!.body.id] : []));
  const { rows } = await sql.query(`select id::text from reservations where sku = any($1::text[])`, [skus]);
  expect(rows.map((r) => r.id).sort(), 'the reservations in the database are the acknowledged ones').toEqual([...answered].sort());
}

/** G1, G3, G4, G7: the harness's own checks and `secventory verify` find nothing. */
export async function expectDatabaseConsistent(databaseUrl: string, sql: pg.Pool): Promise<void> {
  expect(await databaseViolations(sql)).toEqual([]);
  const verified = await verifyDatabase(databaseUrl);
  expect(verified.violations).toEqual([]);
  expect(verified.ok).toBe(true);
}

export interface LoadOptions {
  readonly workers: number;
  /** Names each operation's key; unique per load. */
  readonly prefix: string;
  /** The next operation of worker `w`'s `i`-th step. */
  readonly next: (w: number, i: number) => Operation | null;
  /** After a reservation was answered 201: the operation to follow it with, if any. */
  readonly then?: (reserved: { id: string; sku: string }, w: number, i: number) => Operation | null;
}

/** Workers sending operations back to back until stopped; a failed request is followed by a short pause. */
export function startLoad(client: ChaosClient, options: LoadOptions) {
  let stopped = false;
  const workers = Array.from({ length: options.workers }, async (_, w) => {
    for (let i = 0; !stopped; i++) {
      const op = options.next(w, i);
      if (op === null) return;
      const answer = await client.send(client.start(op));
      if (answer.status === 201 && options.then !== undefined && !stopped) {
        const follow = options.then({ id: answer.body.id, sku: op.sku }, w, i);
        if (follow !== null) await client.send(client.start(follow));
      }
      // While the app or the database is away, do not spin.
      if (!isFinal(answer)) await sleep(50);
    }
  });
  return {
    /** Stops sending; resolves when every worker's last request has been answered or failed. */
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

/** How many operations have a final (2xx or 4xx) answer. */
export function finalAnswers(client: ChaosClient): number {
  return client.attempted.filter((e) => e.answers.some(isFinal)).length;
}

/** A small pool for the test's own SQL, tolerant of the database going away under it. */
export function testPool(databaseUrl: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => {});
  return pool;
}
