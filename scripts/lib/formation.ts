import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { freePort, postmasterOf } from '../../src/persistence/embedded-postgres.ts';
import { primaryUrl } from '../../src/persistence/primary-search.ts';
import { processesWorkingIn, processTree } from './postgres-processes.ts';
import { waitUntil } from './wait.ts';

// A pg_auto_failover formation on loopback, for the failover chaos test and the proof: a monitor,
// a primary and a synchronous secondary, each `pg_autoctl run` as its own process tree, run as the
// user `postgres` (pg_autoctl refuses root) with XDG directories of its own, so that formations of
// several test runs never meet. Every process is found from the pids it started (and, for a
// PostgreSQL whose keeper was killed, from its data directory) and stopped by pid at the end.

/** The database the app uses, created by pg_autoctl on the primary and replicated to the secondary. */
export const formationDatabase = 'secventory';
/** pg_autoctl's create commands (initdb, pg_basebackup, registration) finish within this long. */
const createMsMax = 90_000;
/** The monitor, and a new node, reach their first state within this long. */
const readyMsMax = 60_000;
/** A keeper stops its PostgreSQL (fast shutdown) within this long on SIGTERM, or what is left is killed. */
const stopMsMax = 10_000;
/** Lines of pg_autoctl's output kept per process, for a failure message. */
const outputLinesMax = 200;

/**
 * The monitor's failure detection, tuned down from pg_auto_failover's defaults so that a failover
 * takes seconds and the whole test file stays within its budget: health checks every 1 s instead
 * of 5 s (one retry after 0.5 s instead of two after 2 s), a node unhealthy after 3 s without a
 * report instead of 20 s, and 3 s instead of 30 s for a primary that does not answer to demote
 * itself before its standby takes writes. The last one is what makes a node loss fast; with a
 * synchronous standby it stays safe, because the old primary cannot acknowledge a commit without
 * the standby that is being promoted.
 */
export const monitorSettings: Readonly<Record<string, string>> = {
  'pgautofailover.health_check_period': '1000',
  'pgautofailover.health_check_timeout': '1000',
  'pgautofailover.health_check_max_retries': '1',
  'pgautofailover.health_check_retry_delay': '500',
  'pgautofailover.node_considered_unhealthy_timeout': '3000',
  'pgautofailover.primary_demote_timeout': '3000',
  'pgautofailover.startup_grace_period': '2000',
};

/**
 * pg_autoctl sizes shared_buffers to a quarter of the machine's memory; three servers of a test
 * share one machine with everything else, so each gets a small cache. fsync and synchronous_commit
 * stay on: an acknowledged commit must be on disk on both servers. A short autovacuum naptime, as
 * the embedded server has, so that the commit function's plans see analysed tables soon.
 */
const serverSettings: Readonly<Record<string, string>> = {
  shared_buffers: "'32MB'",
  autovacuum_naptime: "'5s'",
};

/** pg_autoctl on PATH, or null: the failover suite and criterion need it. */
export function pgAutoctlPath(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v pg_autoctl'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** The PostgreSQL programs pg_autoctl was built for (its `version` names the major version). */
function postgresBinDir(pgAutoctl: string): string {
  const version = execFileSync(pgAutoctl, ['version'], { encoding: 'utf8' });
  const major = /compiled with PostgreSQL (\d+)/.exec(version)?.[1];
  const dir = `/usr/lib/postgresql/${major}/bin`;
  if (major === undefined || !existsSync(path.join(dir, 'pg_ctl'))) {
    throw new Error(`pg_autoctl was built for PostgreSQL ${major ?? '?'}, whose programs are not in ${dir}`);
  }
  return dir;
}

interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/**
 * Who runs pg_autoctl: as root, the user `postgres` (created like embedded-postgres does when it is
 * missing; Debian's packages create it), whose group may write PostgreSQL's socket directory.
 */
function runAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('sh', ['-c', 'getent group postgres >/dev/null || groupadd postgres']);
    execFileSync('useradd', ['-g', 'postgres', 'postgres']);
    return { uid: id('-u'), gid: id('-g') };
  }
}

/** What every pg_autoctl of one formation shares: its programs, its user and its XDG directories. */
class Autoctl {
  constructor(
    readonly binary: string,
    readonly binDir: string,
    readonly dir: string,
    private readonly user: RunAs | undefined,
  ) {}

  private env(): Record<string, string> {
    return {
      PATH: `${this.binDir}:/usr/bin:/bin`,
      HOME: this.dir,
      LANG: 'C.UTF-8',
      XDG_CONFIG_HOME: path.join(this.dir, 'xdg', 'config'),
      XDG_DATA_HOME: path.join(this.dir, 'xdg', 'data'),
      XDG_RUNTIME_DIR: path.join(this.dir, 'xdg', 'runtime'),
    };
  }

  spawn(args: readonly string[], output: string[]): ChildProcess {
    const child = spawn(this.binary, args, {
      cwd: this.dir,
      env: this.env(),
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(this.user ?? {}),
    });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        if (output.length > outputLinesMax) output.shift();
      });
    }
    return child;
  }

  /** Runs a pg_autoctl command to its end; throws with its last lines when it fails. */
  async run(args: readonly string[]): Promise<void> {
    const output: string[] = [];
    const child = this.spawn(args, output);
    let timer: NodeJS.Timeout | undefined;
    const code = await new Promise<number | null | 'timeout'>((resolve) => {
      child.once('exit', (exitCode) => resolve(exitCode));
      timer = setTimeout(() => resolve('timeout'), createMsMax);
    });
    clearTimeout(timer);
    if (code === 0) return;
    if (code === 'timeout') child.kill('SIGKILL');
    throw new Error(`pg_autoctl ${args.slice(0, 2).join(' ')} ${code === 'timeout' ? 'timed out' : `exited ${code}`}:
${output.slice(-20).join('\n')}`);
  }

  pgctl(): string {
    return path.join(this.binDir, 'pg_ctl');
  }

  async own(target: string): Promise<void> {
    if (this.user !== undefined) await chown(target, this.user.uid, this.user.gid);
  }
}

/** Sends a signal to each pid; one that exited meanwhile is what a kill wants anyway. */
function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
}

/** The processes a signal struck, and when (epoch milliseconds, just before it was sent). */
export interface Struck {
  readonly pids: readonly number[];
  readonly atMs: number;
}

/** One `pg_autoctl run` (a monitor or a data node) and the PostgreSQL it runs. */
export class AutoctlNode {
  private keeper: ChildProcess | undefined;
  private readonly output: string[] = [];
  private frozen: number[] = [];

  constructor(
    private readonly autoctl: Autoctl,
    readonly name: string,
    readonly port: number,
    readonly pgdata: string,
  ) {}

  /** Starts `pg_autoctl run` on the node's data directory, as after a reboot. */
  run(): void {
    if (this.keeperRunning()) return;
    this.keeper = this.autoctl.spawn(['run', '--pgdata', this.pgdata], this.output);
  }

  keeperRunning(): boolean {
    return this.keeper !== undefined && this.keeper.exitCode === null && this.keeper.signalCode === null;
  }

  /** The keeper's tree (its PostgreSQL included) and any PostgreSQL process working in the data directory. */
  processes(): number[] {
    const roots = [this.keeper?.pid, postmasterOf(this.pgdata)?.pid].filter((p): p is number => p !== undefined);
    const found = new Set(processTree(roots));
    if (existsSync(this.pgdata)) for (const pid of processesWorkingIn(this.pgdata)) found.add(pid);
    return [...found];
  }

  /**
   * The node's machine is lost: SIGKILL to the keeper, the postmaster and every backend at once
   * (a postmaster killed alone is restarted by its keeper, sometimes before the monitor notices).
   */
  async crash(): Promise<Struck> {
    const pids = this.processes();
    const atMs = Date.now();
    signal(pids, 'SIGKILL');
    await waitUntil(() => this.processes().length === 0, stopMsMax, `every process of node ${this.name} exited`);
    return { pids, atMs };
  }

  /** SIGSTOP to every process of the node: a machine that hangs, its connections open. */
  freeze(): Struck {
    this.frozen = this.processes();
    const atMs = Date.now();
    signal(this.frozen, 'SIGSTOP');
    return { pids: this.frozen, atMs };
  }

  thaw(): void {
    signal(this.frozen, 'SIGCONT');
    this.frozen = [];
  }

  /** The keeper's last lines, for a failure message. */
  recentOutput(lines = 30): string {
    return this.output.slice(-lines).join('\n');
  }

  /** Bounded and safe in any state: thaws, asks the keeper to stop, then kills what is left, by pid. */
  async stop(): Promise<void> {
    this.thaw();
    if (this.keeperRunning()) this.keeper!.kill('SIGTERM');
    try {
      await waitUntil(() => this.processes().length === 0, stopMsMax, `node ${this.name} stopped`, 100);
    } catch {
      signal(this.processes(), 'SIGKILL');
      await waitUntil(() => this.processes().length === 0, stopMsMax, `node ${this.name} killed`, 100);
    }
  }
}

/** A node as the monitor sees it. */
export interface NodeState {
  readonly name: string;
  readonly port: number;
  readonly reported: string;
  readonly goal: string;
  /** The monitor's health check: 1 good, 0 bad, -1 unknown. */
  readonly health: number;
}

/** A monitor, a primary `a` and a synchronous secondary `b`, on loopback, in a temporary directory. */
export class Formation {
  private readonly monitorSql: pg.Pool;

  private constructor(
    readonly dir: string,
    readonly monitor: AutoctlNode,
    readonly nodes: readonly [AutoctlNode, AutoctlNode],
  ) {
    this.monitorSql = new pg.Pool({ connectionString: this.monitorUrl, max: 1, connectionTimeoutMillis: 5_000 });
    this.monitorSql.on('error', () => {});
  }

  get monitorUrl(): string {
    return `postgres://autoctl_node@127.0.0.1:${this.monitor.port}/pg_auto_failover`;
  }

  /** The app's DATABASE_URL: both nodes, the read-write one taken (libpq's multi-host form). */
  get url(): string {
    const hosts = this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
    return `postgres://postgres@${hosts}/${formationDatabase}?target_session_attrs=read-write`;
  }

  /** The one-host URL of a node. */
  urlOf(node: AutoctlNode): string {
    return `postgres://postgres@127.0.0.1:${node.port}/${formationDatabase}`;
  }

  /** The one-host URL of whichever node is read-write now. */
  primaryUrl(): Promise<string> {
    return primaryUrl(this.url);
  }

  node(name: string): AutoctlNode {
    const node = this.nodes.find((n) => n.name === name);
    if (node === undefined) throw new Error(`no node ${name}`);
    return node;
  }

  /**
   * Starts the monitor, then `a`, then `b`, and returns once `a` is primary, `b` its secondary and
   * synchronous replication is on. A start that fails stops everything it started.
   */
  static async start(pgAutoctl: string, dirPrefix = 'secventory-formation-'): Promise<Formation> {
    const user = runAs();
    // Under os.tmpdir() and owned by the user pg_autoctl runs as, who must create its data directories.
    const dir = await mkdtemp(path.join(os.tmpdir(), dirPrefix));
    const autoctl = new Autoctl(pgAutoctl, postgresBinDir(pgAutoctl), dir, user);
    await autoctl.own(dir);
    for (const sub of ['xdg', 'xdg/config', 'xdg/data', 'xdg/runtime']) {
      await mkdir(path.join(dir, sub), { mode: 0o700 });
      await autoctl.own(path.join(dir, sub));
    }
    const ports = await distinctFreePorts(3);
    const monitor = new AutoctlNode(autoctl, 'monitor', ports[0]!, path.join(dir, 'monitor'));
    const a = new AutoctlNode(autoctl, 'a', ports[1]!, path.join(dir, 'a'));
    const b = new AutoctlNode(autoctl, 'b', ports[2]!, path.join(dir, 'b'));
    const formation = new Formation(dir, monitor, [a, b]);
    try {
      await formation.startMonitor(autoctl);
      await formation.addNode(autoctl, a, 'single');
      await formation.checkpoint(a);
      await formation.addNode(autoctl, b, 'secondary');
      await formation.waitUntilHealthy(readyMsMax);
    } catch (error) {
      const output = formation.recentOutput();
      await formation.destroy();
      throw new Error(`${(error as Error).message}\n${output}`, { cause: error });
    }
    return formation;
  }

  private async startMonitor(autoctl: Autoctl): Promise<void> {
    const m = this.monitor;
    await autoctl.run([
      'create',
      'monitor',
      ...['--pgdata', m.pgdata, '--pgport', String(m.port), '--pgctl', autoctl.pgctl()],
      ...['--hostname', '127.0.0.1', '--auth', 'trust', '--no-ssl'],
    ]);
    // Loopback only: pg_autoctl's monitor listens on every address unless told.
    await autoctl.run(['config', 'set', '--pgdata', m.pgdata, 'postgresql.listen_addresses', '127.0.0.1']);
    await appendSettings(m.pgdata, { ...serverSettings, ...monitorSettings });
    m.run();
    await waitUntil(async () => (await this.states().catch(() => null)) !== null, readyMsMax, 'the monitor answers');
  }

  private async addNode(autoctl: Autoctl, node: AutoctlNode, state: 'single' | 'secondary'): Promise<void> {
    await autoctl.run([
      'create',
      'postgres',
      ...['--pgdata', node.pgdata, '--pgport', String(node.port), '--pgctl', autoctl.pgctl()],
      ...['--hostname', '127.0.0.1', '--listen', '127.0.0.1', '--name', node.name],
      ...['--auth', 'trust', '--no-ssl', '--dbname', formationDatabase],
      ...['--monitor', `${this.monitorUrl}?sslmode=disable`],
    ]);
    // The secondary's copy already holds the primary's settings (pg_basebackup copies them).
    if (state === 'single') await appendSettings(node.pgdata, serverSettings);
    node.run();
    await this.waitForState(
      (states) => states.some((s) => s.name === node.name && s.reported === state && s.goal === state),
      readyMsMax,
      `node ${node.name} is ${state}`,
    );
    // The state may be the one `create` reported, before `run` has started PostgreSQL again.
    await waitUntil(() => this.answers(node), readyMsMax, `node ${node.name} accepts connections`, 100);
  }

  /** The node's PostgreSQL accepts a connection and answers a query. */
  async answers(node: AutoctlNode): Promise<boolean> {
    const client = new pg.Client({ connectionString: this.urlOf(node), connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('select 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** pg_basebackup of a new secondary starts at a checkpoint: one now saves it the wait. */
  private async checkpoint(node: AutoctlNode): Promise<void> {
    const client = new pg.Client({ connectionString: this.urlOf(node) });
    await client.connect();
    try {
      await client.query('checkpoint');
    } finally {
      await client.end();
    }
  }

  /** Every data node as the monitor sees it, in node order. */
  async states(): Promise<NodeState[]> {
    const { rows } = await this.monitorSql.query(
      `select nodename as name, nodeport as port, reportedstate::text as reported, goalstate::text as goal, health
         from pgautofailover.node order by nodeid`,
    );
    return rows as NodeState[];
  }

  /** Waits until the monitor's view satisfies `condition`; returns how long that took. */
  waitForState(condition: (states: NodeState[]) => boolean, waitMsMax: number, what: string): Promise<number> {
    return waitUntil(async () => condition(await this.states().catch(() => [])), waitMsMax, what, 100).catch(
      async (error: Error) => {
        throw new Error(`${error.message}; now ${describeStates(await this.states().catch(() => []))}`);
      },
    );
  }

  /**
   * Waits until one node is primary and the other its secondary, both as reported and as the
   * monitor wants them, and the primary replicates synchronously to it. Returns the primary.
   */
  async waitUntilHealthy(waitMsMax: number): Promise<AutoctlNode> {
    let primary: AutoctlNode | undefined;
    await waitUntil(
      async () => {
        const states = await this.states().catch(() => []);
        const p = states.find((s) => s.reported === 'primary' && s.goal === 'primary');
        const secondary = states.find((s) => s.reported === 'secondary' && s.goal === 'secondary');
        if (p === undefined || secondary === undefined) return false;
        primary = this.node(p.name);
        return this.replicatesSynchronously(primary);
      },
      waitMsMax,
      'a primary and a synchronous secondary',
      100,
    ).catch(async (error: Error) => {
      throw new Error(
        `${error.message}; now ${describeStates(await this.states().catch(() => []))}\n${this.recentOutput()}`,
      );
    });
    return primary!;
  }

  /** The node's PostgreSQL names a synchronous standby, and one is streaming to it as such. */
  async replicatesSynchronously(node: AutoctlNode): Promise<boolean> {
    const client = new pg.Client({ connectionString: this.urlOf(node), connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      const { rows } = await client.query(
        `select current_setting('synchronous_standby_names') <> '' as named,
                exists (select from pg_stat_replication where sync_state in ('sync', 'quorum')) as streaming`,
      );
      return rows[0].named === true && rows[0].streaming === true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** The keepers' last lines, for a failure message. */
  recentOutput(lines = 15): string {
    return [this.monitor, ...this.nodes].map((n) => `--- ${n.name}\n${n.recentOutput(lines)}`).join('\n');
  }

  /** Stops every node and the monitor by pid (bounded), then removes the directory. */
  async destroy(): Promise<void> {
    await this.monitorSql.end().catch(() => {});
    for (const node of [...this.nodes, this.monitor]) await node.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export function describeStates(states: readonly NodeState[]): string {
  return states
    .map((s) => `${s.name} ${s.reported}/${s.goal}${s.health === 1 ? '' : ` health ${s.health}`}`)
    .join(', ');
}

async function appendSettings(pgdata: string, settings: Readonly<Record<string, string>>): Promise<void> {
  // postgresql.auto.conf is read last, so these win over pg_autoctl's own settings; ALTER SYSTEM
  // (which pg_autoctl uses for synchronous_standby_names) keeps them.
  const lines = Object.entries(settings).map(([name, value]) => `${name} = ${value}\n`);
  await appendFile(path.join(pgdata, 'postgresql.auto.conf'), lines.join(''));
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
