import type pg from 'pg';
import type { Agent } from 'undici';
import { afterAll, beforeAll } from 'vitest';
import { ApiClient, clientAgent } from '../../scripts/lib/api-client.ts';
import { checkPool } from '../../scripts/lib/check-pool.ts';
import { Formation, pgAutoctlPath } from '../../scripts/lib/formation.ts';
import { primaryMoveOf, type PrimaryMove } from '../../scripts/lib/failover-load.ts';
import { OperationLog } from '../../scripts/lib/request-accounting.ts';
import { ServerProcess } from '../../scripts/lib/server-process.ts';
import { shortTimeouts } from './chaos.ts';

// What the failover chaos test stands on: a pg_auto_failover formation (a monitor, a primary and a
// synchronous secondary: scripts/lib/formation.ts), one app process whose DATABASE_URL names both
// nodes (libpq's multi-host form), a client that records every answer, and the line the app logs
// each time it follows the primary to another node.

/** pg_autoctl, or null when it is not installed. */
export const pgAutoctl = pgAutoctlPath();

/** Without pg_autoctl the suite skips with this note, except under CI, where it fails. */
export const pgAutoctlMissing =
  'pg_autoctl is not installed: apt-get install -y postgresql-15-auto-failover pg-auto-failover-cli to run this suite';

export class FailoverRig {
  private constructor(
    readonly formation: Formation,
    /** Every move the app logged, in order. */
    readonly moves: readonly PrimaryMove[],
    public app: ServerProcess,
    private readonly agent: Agent,
    readonly log: OperationLog,
  ) {}

  static async start(skus: readonly string[]): Promise<FailoverRig> {
    if (pgAutoctl === null) throw new Error(`${pgAutoctlMissing}; CI must run it (.ci/run installs them)`);
    const formation = await Formation.start(pgAutoctl, 'secventory-failover-');
    const moves: PrimaryMove[] = [];
    let app: ServerProcess | undefined;
    try {
      app = await ServerProcess.start({
        name: 'app',
        env: { ...shortTimeouts(formation.url), SECVENTORY_SWEEP_INTERVAL_MS: '200' },
        onLine: (line) => {
          const move = primaryMoveOf(line);
          if (move !== null) moves.push(move);
        },
      });
      const agent = clientAgent(128);
      const log = new OperationLog(new ApiClient(app.url, agent, 'ha'));
      const rig = new FailoverRig(formation, moves, app, agent, log);
      for (const sku of skus) await rig.log.acknowledged({ kind: 'create', sku, stock: 1_000_000 });
      return rig;
    } catch (error) {
      await app?.kill();
      await formation.destroy();
      throw error;
    }
  }

  /** A small pool on whichever node is the primary now, for the checks' own SQL. */
  async primarySql(): Promise<pg.Pool> {
    return checkPool(await this.formation.primaryUrl());
  }

  /** Stops everything it started, by pid, whatever state it is in (a frozen node is thawed first). */
  async stop(): Promise<void> {
    await this.app.kill();
    await this.agent.close();
    await this.formation.destroy();
  }
}

/** The file's rig, started before its tests and stopped after them, also when they fail. */
export function failoverRigFor(skus: readonly string[]): () => FailoverRig {
  let rig: FailoverRig | undefined;
  beforeAll(async () => {
    rig = await FailoverRig.start(skus);
  }, 120_000);
  afterAll(async () => {
    await rig?.stop();
  }, 60_000);
  return () => {
    if (rig === undefined) throw new Error('the failover rig did not start (see beforeAll)');
    return rig;
  };
}
