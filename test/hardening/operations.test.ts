import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processesWorkingIn } from '../../scripts/lib/postgres-processes.ts';
import { startNodeServer, type ServerProcess } from '../../scripts/lib/server-process.ts';
import { shutdownMsMax } from '../../src/engine/limits.ts';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import { http } from '../support/app.ts';
import { waitUntil } from '../support/database.ts';

// `secventory` as an operator runs it: `serve` on the embedded PostgreSQL (no DATABASE_URL) as
// its own process, and `verify` / `migrate` as further processes on the same data directory.

const bin = path.resolve('bin/secventory.js');
const asRoot = process.getuid?.() === 0;
/** Beyond shutdownMsMax: the process's own exit and the timers of a machine shared with other test files. */
const exitSlackMs = 2_000;
const startupMs = 120_000;

const servers: ServerProcess[] = [];
const dataDirs: string[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  for (const dir of dataDirs.splice(0)) {
    const pgDir = path.join(dir, 'postgres');
    // What a test left frozen or running: the PostgreSQL processes of its own data directory.
    const left = existsSync(pgDir) ? processesWorkingIn(pgDir) : [];
    for (const pid of left) {
      try {
        for (const signal of ['SIGCONT', 'SIGKILL'] as const) process.kill(pid, signal);
      } catch {
        // ESRCH: it ended on its own meanwhile.
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
});

/** A fresh data directory that any user may reach (0755), as the README's examples use. */
async function openDataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'secventory-ops-'));
  await chmod(dir, 0o755);
  dataDirs.push(dir);
  return dir;
}

async function serve(dataDir: string): Promise<ServerProcess> {
  const server = await startNodeServer([bin, 'serve'], { DATABASE_URL: '', SECVENTORY_DATA_DIR: dataDir });
  servers.push(server);
  return server;
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a secventory command to its end. */
function run(args: string[], env: Record<string, string>, user?: { uid: number; gid: number }): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, DATABASE_URL: '', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...user,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function postmasterPid(dataDir: string): number {
  return Number(readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** Creates a product and reserves from it: the service reads and writes its database. */
async function expectWriting(url: string, sku: string): Promise<void> {
  expect((await http(url, 'POST', '/products', { body: { sku, name: 'Ops', stock: 10 } })).status).toBe(201);
  const reserve = await http(url, 'POST', `/products/${sku}/reservations`, { key: `${sku}-r`, body: { quantity: 2 } });
  expect(reserve.status).toBe(201);
}

/** Sends SIGTERM and returns how long the process took to exit. */
async function stopTimed(server: ServerProcess): Promise<number> {
  servers.splice(servers.indexOf(server), 1);
  const startedMs = performance.now();
  await server.stop();
  return performance.now() - startedMs;
}

/** One line, naming no source file and no stack frame. */
function expectOneLine(stderr: string, message: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(stderr).not.toMatch(/\n\s+at |\.ts:\d+|Error:/);
}

describe('verify and migrate beside a running service', () => {
  it(
    "reuse the service's embedded PostgreSQL and leave it running: the service stays ready and writing",
    async () => {
      const dataDir = await openDataDir();
      const server = await serve(dataDir);
      await expectWriting(server.url, 'OPS-BEFORE');
      const pid = postmasterPid(dataDir);

      const verify = await run(['verify'], { SECVENTORY_DATA_DIR: dataDir });
      expect(verify.code, verify.stderr).toBe(0);
      expect(verify.stdout).toMatch(/^OK: /m);
      const migrate = await run(['migrate'], { SECVENTORY_DATA_DIR: dataDir });
      expect(migrate.code, migrate.stderr).toBe(0);

      expect(postmasterPid(dataDir)).toBe(pid);
      expect((await http(server.url, 'GET', '/health/ready')).status).toBe(200);
      await expectWriting(server.url, 'OPS-AFTER');
    },
    startupMs,
  );

  it(
    'with no service running, migrate and verify each start PostgreSQL for themselves and stop it again',
    async () => {
      const dataDir = await openDataDir();
      const pgDir = path.join(dataDir, 'postgres');
      for (const command of ['migrate', 'verify']) {
        const finished = await run([command], { SECVENTORY_DATA_DIR: dataDir });
        expect(finished.code, finished.stderr).toBe(0);
        expect(processesWorkingIn(pgDir)).toEqual([]);
      }
    },
    startupMs,
  );
});

describe('a service killed without a shutdown', () => {
  it(
    'leaves its PostgreSQL running, and the next start on the same directory reuses it',
    async () => {
      const dataDir = await openDataDir();
      const first = await serve(dataDir);
      await expectWriting(first.url, 'KILLED-1');
      const pid = postmasterPid(dataDir);
      servers.splice(servers.indexOf(first), 1);
      process.kill(first.pid, 'SIGKILL');
      await waitUntil(() => first.rssBytes() === 0, 10_000, 'the killed service is gone');
      // Only to end its memory sampling: stop() awaits an exit that a killed process has already had.
      void first.stop();

      const second = await serve(dataDir);
      expect(postmasterPid(dataDir)).toBe(pid);
      expect((await http(second.url, 'GET', '/products/KILLED-1')).status).toBe(200);
    },
    startupMs,
  );
});

describe('shutdown', () => {
  it(
    `ends within shutdownMsMax (${shutdownMsMax} ms) after the service's PostgreSQL was SIGKILLed`,
    async () => {
      const dataDir = await openDataDir();
      const server = await serve(dataDir);
      await expectWriting(server.url, 'GONE-1');
      process.kill(postmasterPid(dataDir), 'SIGKILL');
      // Its backends notice the postmaster's death and end their connections; new ones are refused.
      const unready = async () => (await http(server.url, 'GET', '/health/ready')).status === 503;
      await waitUntil(unready, 20_000, 'the service saw its database go');
      expect(await stopTimed(server)).toBeLessThan(shutdownMsMax + exitSlackMs);
    },
    startupMs,
  );

  it(
    `ends within shutdownMsMax (${shutdownMsMax} ms) while its PostgreSQL is frozen, requests waiting`,
    async () => {
      const dataDir = await openDataDir();
      const server = await serve(dataDir);
      await expectWriting(server.url, 'FROZEN-1');
      for (const pid of processesWorkingIn(path.join(dataDir, 'postgres'))) process.kill(pid, 'SIGSTOP');
      // Reserves go out until some wait in the product's mailbox behind batches stuck in the database.
      let sent = 0;
      await waitUntil(
        async () => {
          const reserve = { key: `frozen-${sent++}`, body: { quantity: 1 } };
          void http(server.url, 'POST', '/products/FROZEN-1/reservations', reserve).catch(() => {});
          const { body } = await http<{ actors: { sku: string; queueDepth: number }[] }>(server.url, 'GET', '/actors');
          return body.actors.some((a) => a.sku === 'FROZEN-1' && a.queueDepth > 0);
        },
        20_000,
        'reserves queued behind the frozen database',
        100,
      );
      expect(await stopTimed(server)).toBeLessThan(shutdownMsMax + exitSlackMs);
    },
    startupMs,
  );
});

describe('a failed start', () => {
  it(
    'on a port in use exits 1 with one line naming the port, and leaves no PostgreSQL running',
    async () => {
      const dataDir = await openDataDir();
      const held = net.createServer();
      const port = await freePort();
      await new Promise<void>((resolve) => held.listen(port, '127.0.0.1', resolve));
      try {
        const start = await run(['serve'], { SECVENTORY_DATA_DIR: dataDir, PORT: String(port) });
        expect(start.code).toBe(1);
        expectOneLine(start.stderr, new RegExp(`^secventory: port ${port} on 127\\.0\\.0\\.1 is in use; set PORT$`));
        // The service started PostgreSQL before it tried the port; the failed start stopped it.
        expect(existsSync(path.join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
        expect(processesWorkingIn(path.join(dataDir, 'postgres'))).toEqual([]);
      } finally {
        held.close();
      }
    },
    startupMs,
  );
});

describe('data directories in private folders', () => {
  /** Mode bits and owner: what "not loosened" means. */
  const access = (dir: string) => {
    const { mode, uid, gid } = statSync(dir);
    return { mode: mode & 0o7777, uid, gid };
  };

  it(
    'a data directory inside a 0700 folder (mktemp -d) works, and the folder stays 0700',
    async () => {
      const folder = await mkdtemp(path.join(os.tmpdir(), 'secventory-private-'));
      dataDirs.push(folder);
      const before = access(folder);
      expect(before.mode).toBe(0o700);
      let server = await serve(folder);
      await expectWriting(server.url, 'PRIVATE-1');
      await stopTimed(server);
      // Restarted on the same directory: the data is kept.
      server = await serve(folder);
      expect((await http(server.url, 'GET', '/products/PRIVATE-1')).status).toBe(200);
      expect(access(folder)).toEqual(before);
    },
    startupMs,
  );

  const underRoot = asRoot
    ? 'as root, a data directory under /root works, and /root stays closed to others'
    : 'as a user other than root, a data directory under /root is refused';
  it(
    underRoot,
    async () => {
      const before = access('/root');
      if (!asRoot) {
        const start = await run(['serve'], { SECVENTORY_DATA_DIR: `/root/secventory-test-${process.pid}`, PORT: '0' });
        expect(start.code).toBe(1);
        return;
      }
      const folder = await mkdtemp('/root/secventory-test-');
      dataDirs.push(folder);
      const server = await serve(folder);
      await expectWriting(server.url, 'ROOT-1');
      expect(access('/root')).toEqual(before);
    },
    startupMs,
  );

  it(
    'as a user other than root, a data directory under /root is refused with one line saying what to do',
    async () => {
      // As root the command runs as `nobody`; as another user, as that user.
      const user = asRoot ? { uid: 65534, gid: 65534 } : undefined;
      const dataDir = `/root/secventory-test-${process.pid}`;
      const start = await run(['serve'], { SECVENTORY_DATA_DIR: dataDir, PORT: '0' }, user);
      expect(start.code).toBe(1);
      expectOneLine(
        start.stderr,
        /^secventory: cannot create the data directory \/root\/\S+: permission denied; set SECVENTORY_DATA_DIR/,
      );
    },
    startupMs,
  );
});
