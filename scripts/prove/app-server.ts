import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { Cleanup } from './cleanup.ts';
import type { LogBook } from './server-log.ts';
import { serveNodeFlags } from '../../src/runtime-flags.ts';
import { sleep, waitUntil } from '../lib/wait.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `node bin/secventory.js serve` as its own process, as an operator runs it, with its stdout
 * captured line by line into the log book: the structured failure log is part of the evidence.
 * (scripts/lib/server-process.ts discards stdout, which suits a benchmark but not a proof.)
 */
export class AppServer {
  private readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the app and waits until /health/ready answers 200 (bounded). */
  static async start(name: string, port: number, env: Readonly<Record<string, string>>, logBook: LogBook, cleanup: Cleanup): Promise<AppServer> {
    const child = spawn(process.execPath, [...serveNodeFlags, path.join(repoRoot, 'bin/secventory.js'), 'serve'], {
      cwd: repoRoot,
      // Only what the app needs: nothing of the prover's environment (a DATABASE_URL, a LOG_LEVEL)
      // may leak in and change what is being proven.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? os.tmpdir(), HOST: '127.0.0.1', PORT: String(port), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const app = new AppServer(name, child, `http://127.0.0.1:${port}`);
    cleanup.add(`stop ${name} (pid ${child.pid})`, async () => {
      await app.stop();
    });
    // Read continuously: pino writes synchronously, so a full pipe would stall the app's event loop.
    createInterface({ input: child.stdout }).on('line', (line) => logBook.add(name, line));
    createInterface({ input: child.stderr }).on('line', (line) => logBook.add(name, line));
    await waitUntil(async () => {
      if (!app.running) throw new Error(`${name} exited while starting (code ${child.exitCode}, signal ${child.signalCode})`);
      try {
        const res = await request(`${app.url}/health/ready`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
        await res.body.dump();
        return res.statusCode === 200;
      } catch {
        return false;
      }
    }, 30_000, `${name} answered /health/ready`, 100);
    return app;
  }

  /** Graceful (SIGTERM: drain HTTP, actors, pool), bounded; SIGKILL to this pid if it hangs. */
  async stop(graceMsMax = 10_000): Promise<'graceful' | 'killed' | 'not running'> {
    if (!this.running) return 'not running';
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(graceMsMax)]);
    if (!this.running) return 'graceful';
    this.child.kill('SIGKILL');
    await this.exited;
    return 'killed';
  }
}
