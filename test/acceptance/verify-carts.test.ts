import { afterEach, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { cartLoad } from '../support/cart-mix.ts';
import { createTestDatabase } from '../support/database.ts';
import { tamper } from '../support/tamper.ts';

// `secventory verify` on reservations of several lines (carts): each check is shown to pass on a
// database the service wrote, and to fail on one broken behind the engine's back.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function loaded() {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  return { db, carts: await cartLoad(db) };
}

describe('secventory verify on carts', () => {
  it('G1, G4, G7: after every kind of cart operation through HTTP, every check passes', async () => {
    const { db } = await loaded();
    const report = await verifyDatabase(db.url);
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    // The load holds what the cart checks look at: carts in every status, their events on several products.
    const {
      rows: [facts],
    } = await db.sql.query(`
      select (select count(distinct id) from reservations where lines > 1)::int as carts,
             (select array_agg(distinct status order by status) from reservations where lines > 1) as statuses,
             (select count(*) from inventory_events e join reservations r on r.id = e.reservation_id and r.sku = e.sku
               where r.lines > 1)::int as cart_events`);
    expect(facts).toEqual({
      carts: 6,
      statuses: ['active', 'cancelled', 'expired', 'purchased'],
      cart_events: expect.any(Number),
    });
    expect(facts.cart_events).toBeGreaterThan(20);
  });

  it('G4: a line whose status changed behind the engine disagrees with the other lines of its cart', async () => {
    const { db, carts } = await loaded();
    await db.sql.query(
      `update reservations set status = 'cancelled', finished_at = now()
                         where id = $1 and sku = 'C-B'`,
      [carts.active],
    );
    const report = await verifyDatabase(db.url);
    expect(report.ok).toBe(false);
    expect(report.violations).toContainEqual({
      guarantee: 'G4',
      sku: 'C-A',
      reservationId: carts.active,
      message:
        'its lines disagree on its status (C-A active, C-B cancelled, C-C active): ' +
        'all lines of a reservation share one status',
    });
  });

  it('G4: a cart that lost a line, or whose rows repeat a line number, is not lines 0..lines-1', async () => {
    const { db, carts } = await loaded();
    await db.sql.query(`delete from reservations where id = $1 and sku = 'C-C'`, [carts.active]);
    await db.sql.query(`update reservations set line = 0 where id = $1 and sku = 'C-D'`, [carts.extended]);
    const report = await verifyDatabase(db.url);
    const lineFindings = report.violations.filter((v) => v.reservationId !== undefined && v.guarantee === 'G4');
    expect(lineFindings).toEqual(
      expect.arrayContaining([
        { guarantee: 'G4', sku: 'C-A', reservationId: carts.active, message: 'it has 2 rows, but 3 lines' },
        {
          guarantee: 'G4',
          sku: 'C-C',
          reservationId: carts.extended,
          message: 'its line numbers are 0, 0; 2 rows are lines 0..1, each once',
        },
      ]),
    );
    expect(lineFindings).toHaveLength(2);
  });

  it('G1: a line that bought more than it reserved fails verify, though a CHECK forbids it', async () => {
    const { db, carts } = await loaded();
    await db.sql.query('alter table reservations drop constraint reservations_purchased_within_line');
    await db.sql.query(`update reservations set purchased_quantity = quantity + 1 where id = $1 and sku = 'C-B'`, [
      carts.purchased,
    ]);
    const report = await verifyDatabase(db.url);
    expect(report.violations).toContainEqual({
      guarantee: 'G1',
      sku: 'C-B',
      reservationId: carts.purchased,
      message: 'its line bought 2 of the 1 it reserved',
    });
  });

  it('G4: a cart operation whose events two transactions wrote fails verify, chains and counters intact', async () => {
    const { db, carts } = await loaded();
    await tamper(
      db,
      `update inventory_events set tx_id = (tx_id::text::bigint + 1)::text::xid8
                       where reservation_id = $1 and sku = 'C-C' and type = 'purchased'`,
      [carts.partlyPurchased],
    );
    const report = await verifyDatabase(db.url);
    // The operation's transaction now lacks C-C, and the forged one holds only C-C: both are found.
    expect(report.violations).toEqual([
      {
        guarantee: 'G4',
        sku: 'C-B',
        reservationId: carts.partlyPurchased,
        message: expect.stringMatching(
          /^its purchased,released events at \S+Z \(C-B seq \d+, C-B seq \d+, C-D seq \d+\) were written by a transaction that wrote on 2 of its 3 products: /,
        ),
      },
      {
        guarantee: 'G4',
        sku: 'C-C',
        reservationId: carts.partlyPurchased,
        message: expect.stringMatching(
          /^its purchased events at \S+Z \(C-C seq \d+\) were written by a transaction that wrote on 1 of its 3 products: /,
        ),
      },
    ]);
  });
});
