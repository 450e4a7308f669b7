import { afterEach, describe, expect, it } from 'vitest';
import { databaseViolations, type CheckName, type Violation } from '../../scripts/lib/oracle.ts';
import { startTestApp } from '../support/app.ts';
import { tamper } from '../support/tamper.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

// The tests' oracle (scripts/lib/oracle.ts) checks the guarantees in SQL, apart from the engine.
// An oracle that finds nothing on a sound database and finds nothing on a broken one either would
// make every test that relies on it pass for nothing: here each check is shown to fire.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Text that JSON must escape (quote, backslash, control characters) and text beyond ASCII. */
const awkwardReason = 'count "A\\B"\n\ttab \u0001 \u007f é 😀 \u2028 end';
const awkwardKey = 'key "quoted" \\ back/slash';

/**
 * A fresh database after a small load through HTTP on O-A and O-B: creates, adjustments (one with
 * an awkward reason and key), reservations, a purchase, a cancel, a rejection. The service is
 * stopped before the test touches the rows.
 */
async function loadedDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const t = await startTestApp({ db });
  try {
    for (const sku of ['O-A', 'O-B']) {
      expect((await t.http('POST', '/products', { body: { sku, name: sku, stock: 10 } })).status).toBe(201);
      const adjusted = await t.http('POST', `/products/${sku}/stock-adjustments`, {
        key: `${awkwardKey} ${sku}`,
        body: { delta: 5, reason: awkwardReason },
      });
      expect(adjusted.status).toBe(200);
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const reserved = await t.http('POST', `/products/${sku}/reservations`, {
          key: `${sku}-r${i}`,
          body: { quantity: 2, ttlSeconds: 600 },
        });
        expect(reserved.status).toBe(201);
        ids.push(reserved.body.id);
      }
      expect((await t.http('POST', `/reservations/${ids[0]}/purchase`, { key: `${sku}-p` })).status).toBe(200);
      expect((await t.http('POST', `/reservations/${ids[1]}/cancel`, { key: `${sku}-c` })).status).toBe(200);
      // 9 are available now: 10 is refused, and the refusal is an event too.
      const over = await t.http('POST', `/products/${sku}/reservations`, { key: `${sku}-x`, body: { quantity: 10 } });
      expect(over.status).toBe(409);
    }
  } finally {
    await t.close();
  }
  return db;
}

function expectFound(violations: readonly Violation[], check: CheckName, sku: string, message: RegExp): void {
  expect(violations).toContainEqual(expect.objectContaining({ check, sku, message: expect.stringMatching(message) }));
}

describe("the tests' oracle", () => {
  it("finds nothing after a load with text that JSON must escape: its SQL hashes equal the engine's", async () => {
    const db = await loadedDatabase();
    const {
      rows: [awkward],
    } = await db.sql.query(`select count(*)::int as n from inventory_events where reason = $1`, [awkwardReason]);
    expect(awkward.n).toBe(2);
    expect(await databaseViolations(db.sql)).toEqual([]);
  });

  it('G7: an edited event breaks the hash chain at that event, and nowhere else', async () => {
    const db = await loadedDatabase();
    await tamper(db, `update inventory_events set reason = 'theft' where sku = 'O-B' and seq = 2`);
    expect(await databaseViolations(db.sql)).toEqual([
      { check: 'hash-chain', guarantee: 'G7', sku: 'O-B', message: 'event 2 (stock_adjusted) breaks the hash chain' },
    ]);
  });

  it('G7: an event whose stated counters do not follow from the one before is found by the replay', async () => {
    const db = await loadedDatabase();
    await tamper(db, `update inventory_events set reserved = reserved + 1 where sku = 'O-A' and seq = 3`);
    const violations = await databaseViolations(db.sql);
    expectFound(
      violations,
      'replay-step',
      'O-A',
      /^event 3 \(reserved\) states total 15\/reserved 3\/purchased 0, but .* gives total 15\/reserved 2\/purchased 0/,
    );
  });

  it('G4, G7: a deleted event leaves the version and the seq run apart', async () => {
    const db = await loadedDatabase();
    await tamper(db, `delete from inventory_events where sku = 'O-A' and seq = 4`);
    const violations = await databaseViolations(db.sql);
    expectFound(violations, 'version-events', 'O-A', /^version \d+, but it has \d+ events, seq 1 to \d+$/);
  });

  it('G4, G7: a counter changed behind the engine differs from the reservation rows and from the events', async () => {
    const db = await loadedDatabase();
    await db.sql.query(`update products set reserved = reserved - 1 where sku = 'O-B'`);
    const violations = await databaseViolations(db.sql);
    expectFound(violations, 'reserved-sum', 'O-B', /^reserved 3, but its active reservations hold 4$/);
    expectFound(violations, 'row-replays', 'O-B', /but its row holds total 15\/reserved 3\/purchased 2$/);
  });

  it("G1, G3: an oversold or negative product is found (with the schema's CHECK constraints dropped)", async () => {
    const db = await loadedDatabase();
    await db.sql.query(`alter table products drop constraint products_g1_no_overselling,
                                              drop constraint products_g3_purchased_nonnegative`);
    await db.sql.query(`update products set total = 1 where sku = 'O-A'`);
    await db.sql.query(`update products set purchased = -1 where sku = 'O-B'`);
    const violations = await databaseViolations(db.sql);
    expectFound(violations, 'oversold', 'O-A', /^oversold: reserved 4 \+ purchased 2 > total 1$/);
    expectFound(violations, 'negative', 'O-B', /^negative counter: total 15, reserved 4, purchased -1$/);
  });

  it('G7: a reservation whose row contradicts its history is found, and an event naming no reservation', async () => {
    const db = await loadedDatabase();
    const {
      rows: [active],
    } = await db.sql.query(`select id::text from reservations where sku = 'O-A' and status = 'active' limit 1`);
    await db.sql.query(`update reservations set status = 'expired', finished_at = now() where id = $1`, [active.id]);
    await tamper(
      db,
      `update inventory_events set reservation_id = gen_random_uuid()
                       where sku = 'O-B' and type = 'cancelled'`,
    );
    const violations = await databaseViolations(db.sql);
    expectFound(
      violations,
      'lifecycle',
      'O-A',
      new RegExp(`^reservation ${active.id} \\(2 of O-A\\) is expired, but its events are \\{reserved\\}$`),
    );
    expectFound(
      violations,
      'orphan-event',
      'O-B',
      /^event \d+ \(cancelled\) names reservation [0-9a-f-]{36}, which does not exist$/,
    );
  });

  it('G2, G4: a key remembering a reservation that is not there, and rows of no product, are found', async () => {
    const db = await loadedDatabase();
    await db.sql.query(`update idempotency_records set outcome = jsonb_set(outcome, '{reservation,quantity}', '7')
                         where sku = 'O-A' and key = 'O-A-r2'`);
    await db.sql.query(`delete from products where sku = 'O-B'`);
    const violations = await databaseViolations(db.sql);
    expectFound(
      violations,
      'remembered-reservation',
      'O-A',
      /^key O-A-r2 remembers creating reservation [0-9a-f-]{36} of 7, which is not in the database$/,
    );
    expectFound(violations, 'no-product', 'O-B', /^\d+ reservations rows belong to this sku, but no product row does$/);
    expectFound(
      violations,
      'no-product',
      'O-B',
      /^\d+ inventory_events rows belong to this sku, but no product row does$/,
    );
  });

  it('checks only the products it is given', async () => {
    const db = await loadedDatabase();
    await db.sql.query(`update products set reserved = reserved - 1 where sku = 'O-B'`);
    expect(await databaseViolations(db.sql, ['O-A'])).toEqual([]);
    expect((await databaseViolations(db.sql, ['O-B'])).length).toBeGreaterThan(0);
  });
});
