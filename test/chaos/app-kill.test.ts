import { beforeAll, describe, expect, it } from 'vitest';
import { committedUnacknowledged, startLoad } from '../../scripts/lib/request-accounting.ts';
import { waitUntil } from '../../scripts/lib/wait.ts';
import {
  chaosRigFor,
  chaosRounds,
  expectAcknowledgedDurable,
  expectDatabaseConsistent,
  itKeepsTheGuarantees,
  report,
  retryWithinMs,
} from '../support/chaos.ts';

// The app is SIGKILLed - no shutdown hook, no draining - while clients reserve and purchase.
// Whatever it had answered must be in the database; whatever it had not answered may or may not
// have committed, and the clients' retries with the same keys must make each take effect once.

const skus = ['KILL-A', 'KILL-B', 'KILL-C', 'EXPIRE-APP'];
const rig = chaosRigFor((databaseUrl) => ({ DATABASE_URL: databaseUrl }), skus);
/** Final answers before each kill, so that the kill lands in a running load. */
const answeredBeforeKill = 300;

describe('the app SIGKILLed during a reserve/purchase load, then restarted', () => {
  beforeAll(async () => {
    const { log } = rig();
    let inDoubt = 0;
    let committedUnanswered = 0;
    for (let round = 0; round < chaosRounds; round++) {
      const load = startLoad(log, {
        workers: 24,
        next: (w, i) => ({
          kind: 'reserve',
          sku: skus[(w + i) % 3]!,
          key: `r${round}-${w}-${i}`,
          quantity: 1 + (i % 3),
          ttlSeconds: 600,
        }),
        then: (r, w, i) =>
          (w + i) % 2 === 0 ? { kind: 'purchase', sku: r.sku, key: `buy-${r.id}`, reservationId: r.id } : null,
      });
      const answeredBefore = log.finalCount();
      await waitUntil(
        () => log.finalCount() >= answeredBefore + answeredBeforeKill,
        20_000,
        `${answeredBeforeKill} answered requests before the kill`,
      );
      const pid = rig().app.pid;
      await rig().app.kill();
      await load.stop();
      inDoubt += log.open().length;

      const restartedMs = performance.now();
      await rig().restartApp();
      expect(rig().app.pid).not.toBe(pid);
      const restartMs = performance.now() - restartedMs;
      const retried = await log.retryOpen(retryWithinMs);
      // An unanswered request replayed on retry had committed before the kill (in doubt, then kept).
      committedUnanswered += committedUnacknowledged(retried);
      report('app SIGKILL', { round, inFlightAtKill: retried.length, restartMs });
    }
    report('app SIGKILL', { requests: log.attempted.length, inDoubt, committedButUnanswered: committedUnanswered });
  }, 120_000);

  itKeepsTheGuarantees(rig, skus, 'an app SIGKILL and restart', answeredBeforeKill);
});

describe('reservations that expire while the app is down', () => {
  const sku = 'EXPIRE-APP';
  let shortIds: string[] = [];
  let longIds: string[] = [];

  beforeAll(async () => {
    const { log, sql } = rig();
    const reserve = async (quantity: number, ttlSeconds: number, key: string) =>
      (await log.acknowledged({ kind: 'reserve', sku, key, quantity, ttlSeconds })).body as {
        id: string;
        expiresAt: string;
      };
    const short = await Promise.all([1, 2, 3, 4, 5].map((n) => reserve(n, 1, `short-${n}`)));
    const long = await Promise.all([1, 2].map((n) => reserve(n, 600, `long-${n}`)));
    shortIds = short.map((r) => r.id);
    longIds = long.map((r) => r.id);
    const expiresAtMs = Math.max(...short.map((r) => Date.parse(r.expiresAt)));
    await rig().app.kill();
    await waitUntil(
      () => Date.now() > expiresAtMs + 500,
      5_000,
      'the short reservations expired while the app was down',
    );
    const { rows } = await sql.query(
      `select count(*)::int as n from reservations where id = any($1::uuid[]) and status = 'active'`,
      [shortIds],
    );
    expect(rows[0].n, 'nobody was there to expire them').toBe(shortIds.length);

    const startedMs = performance.now();
    await rig().restartApp();
    await waitUntil(
      async () => {
        const {
          rows: [r],
        } = await sql.query(
          `select count(*)::int as n from reservations where id = any($1::uuid[]) and status = 'expired'`,
          [shortIds],
        );
        return r.n === shortIds.length;
      },
      10_000,
      'the restarted app expired them',
    );
    report('expiry while the app is down', { reconcileMsIncludingAppStart: performance.now() - startedMs });
  }, 60_000);

  it('G6: reservations that expired while the app was down are expired by the restarted app, and their stock is available again', async () => {
    const { rows } = await rig().sql.query(`select id::text, status from reservations where sku = $1`, [sku]);
    const status = new Map(rows.map((r) => [r.id, r.status]));
    for (const id of shortIds) expect(status.get(id)).toBe('expired');
    for (const id of longIds) expect(status.get(id)).toBe('active');
    const inventory = await rig().log.client.send('GET', `/products/${sku}/inventory`);
    expect(inventory.body).toMatchObject({ reserved: 1 + 2, activeReservations: 2 });
    const { rows: events } = await rig().sql.query(
      `select source, late_ms::float8 from inventory_events where type = 'expired' and reservation_id = any($1::uuid[])`,
      [shortIds],
    );
    expect(events).toHaveLength(shortIds.length);
    for (const e of events) {
      expect(e.source).toBe('sweeper');
      expect(e.late_ms).toBeGreaterThan(0);
    }
  });

  it('G5 G1 G3 G4 G7: every acknowledged reservation is there and the database is consistent', async () => {
    await expectAcknowledgedDurable(rig().sql, rig().log.attempted);
    await expectDatabaseConsistent(rig().db.url, rig().sql);
  });
});
