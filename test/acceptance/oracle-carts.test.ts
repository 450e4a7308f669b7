import { afterEach, describe, expect, it } from 'vitest';
import { databaseViolations, partialReservations, type CheckName, type Violation } from '../../scripts/lib/oracle.ts';
import { cartLoad } from '../support/cart-mix.ts';
import { createTestDatabase } from '../support/database.ts';
import { tamper } from '../support/tamper.ts';

// The tests' oracle (scripts/lib/oracle.ts) on reservations of several lines (carts): each of its
// cart checks finds nothing on a database the service wrote, and fires on one broken on purpose.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function loaded() {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  return { db, carts: await cartLoad(db) };
}

const ofCheck = (violations: readonly Violation[], check: CheckName) => violations.filter((v) => v.check === check);

describe("the tests' oracle on carts", () => {
  it('finds nothing after every kind of cart operation through HTTP', async () => {
    const { db } = await loaded();
    expect(await databaseViolations(db.sql)).toEqual([]);
  });

  it('G4: a line whose status changed behind the engine is found, on the products asked about', async () => {
    const { db, carts } = await loaded();
    await db.sql.query(
      `update reservations set status = 'cancelled', finished_at = now()
                         where id = $1 and sku = 'C-B'`,
      [carts.active],
    );
    const found = {
      check: 'cart-status',
      guarantee: 'G4',
      sku: 'C-A',
      message: `reservation ${carts.active} has lines in different statuses: C-A active, C-B cancelled, C-C active`,
    };
    expect(ofCheck(await databaseViolations(db.sql), 'cart-status')).toEqual([found]);
    expect(ofCheck(await databaseViolations(db.sql, ['C-C']), 'cart-status')).toEqual([found]);
    expect(ofCheck(await databaseViolations(db.sql, ['C-D']), 'cart-status')).toEqual([]);
  });

  it('G4: a cart whose lines disagree on their expiry is found, and is a reservation stored in part', async () => {
    const { db, carts } = await loaded();
    await db.sql.query(
      `update reservations set expires_at = expires_at + interval '1 minute' where id = $1 and sku = 'C-D'`,
      [carts.extended],
    );
    const found = ofCheck(await databaseViolations(db.sql), 'cart-expiry');
    expect(found).toEqual([
      {
        check: 'cart-expiry',
        guarantee: 'G4',
        sku: 'C-C',
        message: expect.stringMatching(
          new RegExp(`^reservation ${carts.extended} has lines with different expiries: C-C \\S+Z, C-D \\S+Z$`),
        ),
      },
    ]);
    expect(partialReservations(await databaseViolations(db.sql, ['C-D']))).toEqual(found);
  });

  it('G4: a cart that lost a line, or whose rows repeat a line number, is found', async () => {
    const { db, carts } = await loaded();
    await db.sql.query(`delete from reservations where id = $1 and sku = 'C-C'`, [carts.active]);
    await db.sql.query(`update reservations set line = 0 where id = $1 and sku = 'C-D'`, [carts.extended]);
    expect(ofCheck(await databaseViolations(db.sql), 'cart-lines')).toEqual([
      {
        check: 'cart-lines',
        guarantee: 'G4',
        sku: 'C-A',
        message: `reservation ${carts.active} has rows of lines {0,1}, but says it has 3 lines`,
      },
      {
        check: 'cart-lines',
        guarantee: 'G4',
        sku: 'C-C',
        message: `reservation ${carts.extended} has rows of lines {0,0}, but says it has 2 lines`,
      },
    ]);
  });

  it('G1: a line that bought more than it reserved is found (with the CHECK dropped)', async () => {
    const { db, carts } = await loaded();
    await db.sql.query('alter table reservations drop constraint reservations_purchased_within_line');
    await db.sql.query(`update reservations set purchased_quantity = quantity + 1 where id = $1 and sku = 'C-B'`, [
      carts.purchased,
    ]);
    expect(ofCheck(await databaseViolations(db.sql), 'line-purchase')).toEqual([
      {
        check: 'line-purchase',
        guarantee: 'G1',
        sku: 'C-B',
        message: `reservation ${carts.purchased} bought 2 of the 1 its line reserved`,
      },
    ]);
  });

  it('G4: a cart operation whose events two transactions wrote is found, and nothing else is', async () => {
    const { db, carts } = await loaded();
    await tamper(
      db,
      `update inventory_events set tx_id = (tx_id::text::bigint + 1)::text::xid8
                       where reservation_id = $1 and sku = 'C-C' and type = 'purchased'`,
      [carts.partlyPurchased],
    );
    const split = (sku: string, products: number) => ({
      check: 'cart-transaction',
      guarantee: 'G4',
      sku,
      message: expect.stringMatching(
        new RegExp(
          `^a transaction wrote events of reservation ${carts.partlyPurchased} on ${products} of its 3 products$`,
        ),
      ),
    });
    // The operation's transaction now lacks C-C, and the forged one holds only C-C: both are found.
    expect(await databaseViolations(db.sql)).toEqual([split('C-B', 2), split('C-C', 1)]);
  });
});
