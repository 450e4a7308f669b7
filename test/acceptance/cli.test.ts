import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import { http } from '../support/app.ts';
import { waitUntil } from '../support/database.ts';

const bin = path.resolve('bin/secventory.js');

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('configuration', () => {
  it.each([
    ['PORT', 'not-a-port', /PORT must be integer/],
    ['PORT', '70000', /PORT must be <= 65535/],
    ['SECVENTORY_BATCH_SIZE_MAX', '0', /SECVENTORY_BATCH_SIZE_MAX must be >= 1/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL must be equal to one of the allowed values/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL must match pattern/],
  ])('a bad %s (%s) exits 1 with a clear message', async (name, value, message) => {
    const { code, stderr } = await run(['serve'], { [name]: value });
    expect(code).toBe(1);
    expect(stderr).toMatch(/secventory: invalid configuration/);
    expect(stderr).toMatch(message);
  });

  it.each([
    ['postgres://u@a:6001,b:x/db', /DATABASE_URL: the port of host b must be 1-65535, not "x"/],
    ['postgres://u@a,b/db?target_session_attrs=standby', /target_session_attrs must be read-write, primary or any/],
  ])('a malformed multi-host DATABASE_URL (%s) exits 1 with one line and no stack trace', async (value, message) => {
    const { code, stderr } = await run(['serve'], { DATABASE_URL: value });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^secventory: invalid configuration: /)]);
    expect(stderr).toMatch(message);
  });
});

describe('secventory serve on the embedded default', () => {
  const children: ChildProcess[] = [];
  let dataDir = '';
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function serve(port: number): Promise<ChildProcess> {
    const child = spawn(process.execPath, [bin, 'serve'], {
      env: { ...process.env, DATABASE_URL: '', PORT: String(port), SECVENTORY_DATA_DIR: dataDir, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await waitUntil(
      () => out.includes('secventory is serving') || child.exitCode !== null,
      30_000,
      'the server started',
    );
    expect(child.exitCode).toBeNull();
    expect(out).toMatch(/embedded PostgreSQL is running; its data lives in dataDir/);
    return child;
  }

  function stop(child: ChildProcess): Promise<number | null> {
    return new Promise((resolve) => {
      child.on('exit', (code) => resolve(code));
      child.kill('SIGTERM');
    });
  }

  it('starts with no DATABASE_URL, keeps data across a restart, and stops cleanly on SIGTERM', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'secventory-serve-'));
    await chmod(dataDir, 0o755);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const first = await serve(port);
    expect((await http(base, 'POST', '/products', { body: { sku: 'KEEP-1', name: 'Kept', stock: 3 } })).status).toBe(
      201,
    );
    expect(await stop(first)).toBe(0);

    const second = await serve(port);
    const res = await http(base, 'GET', '/products/KEEP-1');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ sku: 'KEEP-1', name: 'Kept', inventory: { total: 3 } });
    expect(await stop(second)).toBe(0);
  });
});
