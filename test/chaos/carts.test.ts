import { beforeAll, describe, expect, it } from 'vitest';
import { isFinal } from '../../scripts/lib/api-client.ts';
import { cartDurability, cartExactlyOnce } from '../../scripts/lib/cart-acknowledged.ts';
import { databaseViolations, partialReservations } from '../../scripts/lib/oracle.ts';
import { committedUnacknowledged, type CartLine } from '../../scripts/lib/request-accounting.ts';
import { sleep, waitUntil } from '../../scripts/lib/wait.ts';
import { startCartLoad } from '../support/cart-load.ts';
import {
  chaosRigFor,
  chaosRounds,
  expectDatabaseConsistent,
  report,
  retryWithinMs,
  shortTimeouts,
  type ChaosRig,
} from '../support/chaos.ts';

// Carts (reservations of several products) in flight - reserved, extended, bought in part or in
// whole, cancelled - when the app is SIGKILLed, then when PostgreSQL is. A cart's products commit
// in one transaction, so whatever the kill interrupted, no cart may be found reserved, bought,
// cancelled or extended on some of its products and not on the others; whatever was acknowledged
// is there as answered; and every request retried with its key takes effect once.

const ample = ['CART-A', 'CART-B', 'CART-C', 'CART-D'];
/** Sells out during the load, so that carts naming it are refused whole (409) and retried refusals replay. */
const scarce = 'CART-SCARCE';
const scarceStock = 10;
const skus = [...ample, scarce];
const rig = chaosRigFor(shortTimeouts, ample);
const workers = 24;
/** Final answers before each kill, so that the kill lands in a running load. */
const answeredBeforeKill = 150;
const recoverWithinMs = 10_000;

/**
 * Worker `w`'s `i`-th cart: 2 or 3 of the ample products from a rotating start, every fourth with
 * the scarce one instead of its last line; even workers list their lines in descending SKU order,
 * odd ones ascending, so that carts over the same products wait for them in opposite orders.
 */
function linesOf(w: number, i: number): CartLine[] {
  const size = 2 + ((w + i) % 2);
  const chosen = Array.from({ length: size }, (_, k) => ample[(w + i + k) % ample.length]!);
  if (i % 4 === 0) chosen[size - 1] = scarce;
  const ordered = w % 2 === 0 ? chosen.sort().reverse() : chosen.sort();
  return ordered.map((sku) => ({ sku, quantity: 1 + (i % 3) }));
}

/** Retries one cart reserve on the ample products until it is answered 201; returns how long that took. */
async function recovered(r: ChaosRig, key: string): Promise<number> {
  const probe = r.log.start({
    kind: 'cart-reserve',
    key,
    lines: [
      { sku: ample[0]!, quantity: 1 },
      { sku: ample[1]!, quantity: 1 },
    ],
    ttlSeconds: 600,
  });
  return waitUntil(
    async () => (await r.log.send(probe)).status === 201,
    recoverWithinMs,
    'the app reserved a cart again',
  );
}

/**
 * Sends the load, waits for `answeredBeforeKill` more final answers, then runs `failure`, which
 * stops the load when its clients should stop coming; then retries every operation left in doubt
 * with its key, and returns how many there were.
 */
async function cartsThrough(
  r: ChaosRig,
  tag: string,
  failure: (stopLoad: () => Promise<void>) => Promise<void>,
): Promise<number> {
  const load = startCartLoad(r.log, { workers, tag, linesOf });
  const answeredBefore = r.log.finalCount();
  await waitUntil(
    () => r.log.finalCount() >= answeredBefore + answeredBeforeKill,
    30_000,
    `${answeredBeforeKill} cart answers before the kill`,
  );
  await failure(() => load.stop());
  await load.stop();
  const inDoubt = r.log.open().length;
  const retried = await r.log.retryOpen(retryWithinMs);
  report(`carts: ${tag}`, {
    inDoubt,
    committedButUnanswered: committedUnacknowledged(retried),
    requestsSoFar: r.log.answers().length,
  });
  return inDoubt;
}

/** The guarantees checked after each failure, on everything the clients did so far. */
function itKeepsCartsWhole(retriedAfter: () => number, failure: string): void {
  it(`G4: no cart is partial after ${failure}: every reservation's rows share one status and one expiry, one row per line`, async () => {
    const { sql } = rig();
    expect(partialReservations(await databaseViolations(sql))).toEqual([]);
    const { rows } = await sql.query(`select distinct status from reservations where lines > 1 order by status`);
    expect(
      rows.map((x) => x.status),
      'carts reached each status the load drives them to',
    ).toEqual(['active', 'cancelled', 'purchased']);
  });

  it(`G5: every acknowledged cart reserve, extension, purchase (whole or in part) and cancel survives ${failure}`, async () => {
    const { checked, missing } = await cartDurability(rig().sql, rig().log.attempted);
    expect(missing).toEqual([]);
    expect(checked).toBeGreaterThan(answeredBeforeKill);
  });

  it(`G2: cart operations retried with their keys after ${failure} take effect once: one set of reserved events per cart`, async () => {
    expect(retriedAfter(), 'operations in doubt, retried with their keys').toBeGreaterThan(0);
    const { operations, ...findings } = await cartExactlyOnce(rig().sql, rig().log.attempted, skus);
    expect(findings).toEqual({ unanswered: [], disagreeing: [], notOnce: [], unexplainedReservations: [] });
    expect(operations).toBeGreaterThan(answeredBeforeKill);
    const refused = rig().log.attempted.filter(
      (e) => e.op.kind === 'cart-reserve' && e.answers.find(isFinal)?.status === 409,
    );
    expect(refused.length, 'carts refused whole for want of the scarce product').toBeGreaterThan(0);
  });

  it(`G1 G3 G4 G7: after ${failure} the SQL oracle and secventory verify find nothing wrong`, async () => {
    await expectDatabaseConsistent(rig().db.url, rig().sql);
  });
}

describe('carts in flight when the app is SIGKILLed, then restarted', () => {
  let inDoubt = 0;

  beforeAll(async () => {
    const r = rig();
    await r.log.acknowledged({ kind: 'create', sku: scarce, stock: scarceStock });
    for (let round = 0; round < chaosRounds; round++) {
      inDoubt += await cartsThrough(r, `app${round}`, async (stopLoad) => {
        const pid = r.app.pid;
        await r.app.kill();
        // What was in flight at the kill is in doubt; nobody sends more until the app is back.
        await stopLoad();
        const restartedMs = performance.now();
        await r.restartApp();
        expect(r.app.pid).not.toBe(pid);
        report('carts: app SIGKILL', { round, restartMs: performance.now() - restartedMs });
      });
    }
  }, 150_000);

  itKeepsCartsWhole(() => inDoubt, 'an app SIGKILL');
});

describe('carts in flight when PostgreSQL is SIGKILLed, then restarted on the same data directory', () => {
  let inDoubt = 0;

  beforeAll(async () => {
    const r = rig();
    for (let round = 0; round < chaosRounds; round++) {
      inDoubt += await cartsThrough(r, `pg${round}`, async (stopLoad) => {
        const pids = await r.db.kill();
        // Clients keep coming while PostgreSQL is down: they are answered 503 and retry later.
        await sleep(2_000);
        await r.db.restart();
        const recoveryMs = await recovered(r, `pg${round}-probe`);
        await stopLoad();
        report('carts: PostgreSQL SIGKILL', { round, processesKilled: pids.length, recoveryMs });
      });
    }
  }, 150_000);

  itKeepsCartsWhole(() => inDoubt, 'a PostgreSQL SIGKILL');
});
