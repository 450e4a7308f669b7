import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { eventHash } from '../../src/engine/event-hash.ts';
import type { EventDraft } from '../../src/engine/types.ts';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import type { VerifyReport } from '../../src/audit/verify-report.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { tamper } from '../support/tamper.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

// Every test gets its own database; whatever a test leaves open is closed here, also on failure.
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  return db;
}

let keySeq = 0;
const key = () => `verify-${++keySeq}`;

/**
 * A mixed load through HTTP on V-A, V-B and V-C: creates, adjustments, reservations, purchases,
 * cancellations, a retried request, rejections, and (when `withExpiry`) an expiry by the sweeper
 * followed by a purchase of the expired reservation. Leaves active reservations on every product.
 */
async function mixedLoad(t: TestApp, withExpiry = false): Promise<void> {
  for (const sku of ['V-A', 'V-B', 'V-C']) {
    expect((await t.http('POST', '/products', { body: { sku, name: sku, stock: 20 } })).status).toBe(201);
  }
  const reserve = (sku: string, quantity: number, k = key(), ttlSeconds = 600) =>
    t.http('POST', `/products/${sku}/reservations`, { key: k, body: { quantity, ttlSeconds } });
  await Promise.all(
    ['V-A', 'V-B', 'V-C'].map(async (sku) => {
      await t.http('POST', `/products/${sku}/stock-adjustments`, {
        key: key(),
        body: { delta: 5, reason: 'delivery' },
      });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await reserve(sku, 2)).body.id);
      const retried = key();
      await reserve(sku, 1, retried);
      expect((await reserve(sku, 1, retried)).headers['idempotent-replayed']).toBe('true');
      await t.http('POST', `/reservations/${ids[0]}/purchase`);
      await t.http('POST', `/reservations/${ids[1]}/purchase`, { key: key() });
      await t.http('POST', `/reservations/${ids[2]}/cancel`);
      await t.http('POST', `/reservations/${ids[2]}/purchase`);
      expect((await reserve(sku, 1000)).status).toBe(409);
      await t.http('POST', `/products/${sku}/stock-adjustments`, {
        key: key(),
        body: { delta: -1000, reason: 'count' },
      });
    }),
  );
  if (withExpiry) {
    const short = (await reserve('V-A', 1, key(), 1)).body;
    await waitUntil(
      async () => (await t.http('GET', `/reservations/${short.id}`)).body.status === 'expired',
      5000,
      'the sweeper expired the reservation',
    );
    expect((await t.http('POST', `/reservations/${short.id}/purchase`, { key: key() })).body.code).toBe(
      'reservation_expired',
    );
  }
}

/** A fresh database after a mixed load, with the service stopped so only the test writes. */
async function loadedDatabase(withExpiry = false): Promise<TestDatabase> {
  const db = await freshDatabase();
  const t = await startTestApp({ db });
  try {
    await mixedLoad(t, withExpiry);
  } finally {
    await t.close();
  }
  return db;
}

function expectViolation(report: VerifyReport, guarantee: string, sku: string, message: RegExp) {
  expect(report.ok).toBe(false);
  expect(report.violations).toContainEqual(
    expect.objectContaining({ guarantee, sku, message: expect.stringMatching(message) }),
  );
  // The finding points at the product that was broken, not at its neighbours.
  expect(report.violations.map((v) => v.sku)).toEqual(report.violations.map(() => sku));
}

describe('secventory verify', () => {
  it('G1-G4, G7: after a mixed load through HTTP (with an expiry and a retry) every check passes', async () => {
    const db = await loadedDatabase(true);
    const report = await verifyDatabase(db.url);
    expect(report.violations).toEqual([]);
    expect(report).toMatchObject({ ok: true, products: 3 });
    const { rows } = await db.sql.query(
      'select (select count(*) from inventory_events)::int as events, (select count(*) from reservations)::int as reservations',
    );
    expect(report.events).toBe(rows[0].events);
    expect(report.reservations).toBe(rows[0].reservations);
  });

  it('G4, G7: a counter changed behind the engine fails verify, naming the product', async () => {
    const db = await loadedDatabase();
    await db.sql.query(`update products set reserved = reserved - 1 where sku = 'V-B'`);
    const report = await verifyDatabase(db.url);
    expectViolation(report, 'G4', 'V-B', /reserved is \d+, but its active reservations hold \d+/);
    expectViolation(report, 'G7', 'V-B', /replaying its events gives/);
  });

  it('G7: a deleted event fails verify with the gap it left, naming the product', async () => {
    const db = await loadedDatabase();
    await tamper(db, `delete from inventory_events where sku = 'V-A' and seq = 4`);
    const report = await verifyDatabase(db.url);
    expectViolation(report, 'G7', 'V-A', /seq gap: seq 3 is followed by seq 5 \(missing 4\)/);
  });

  it("G7: an edited event breaks the product's hash chain at that event", async () => {
    const db = await loadedDatabase();
    await tamper(db, `update inventory_events set reason = 'theft' where sku = 'V-C' and seq = 2`);
    const report = await verifyDatabase(db.url);
    expectViolation(report, 'G7', 'V-C', /hash chain broken at seq 2 \(stock_adjusted\)/);
    expect(report.violations).toHaveLength(1);
  });

  it("G7: a reservation's status changed behind the engine contradicts its history", async () => {
    const db = await loadedDatabase();
    const { rows } = await db.sql.query(`select id from reservations where sku = 'V-B' and status = 'active' limit 1`);
    await db.sql.query(
      `update reservations set status = 'purchased', purchased_quantity = quantity, finished_at = now() where id = $1::uuid`,
      [rows[0].id],
    );
    const report = await verifyDatabase(db.url);
    expect(report.violations).toContainEqual({
      guarantee: 'G7',
      sku: 'V-B',
      reservationId: rows[0].id,
      message: 'its events end in active, but its row says purchased',
    });
    expectViolation(report, 'G4', 'V-B', /purchased is \d+, but its purchased reservations hold \d+/);
  });

  it('G7: a gap in the sequence (an event renumbered, the version moved along) fails verify', async () => {
    const db = await loadedDatabase();
    await tamper(
      db,
      `update inventory_events set seq = seq + 1 where sku = 'V-C' and seq = (select version from products where sku = 'V-C')`,
    );
    await db.sql.query(`update products set version = version + 1 where sku = 'V-C'`);
    const report = await verifyDatabase(db.url);
    expectViolation(report, 'G7', 'V-C', /seq gap: seq \d+ is followed by seq \d+ \(missing \d+\)/);
  });

  it('G4, G7: events and reservations whose product row was deleted fail verify, naming the sku', async () => {
    const db = await loadedDatabase();
    await db.sql.query(`delete from products where sku = 'V-C'`);
    const report = await verifyDatabase(db.url);
    expect(report.products).toBe(2);
    expectViolation(report, 'G7', 'V-C', /^\d+ inventory_events rows belong to this sku, but no product row does$/);
    expectViolation(report, 'G4', 'V-C', /^\d+ reservations rows belong to this sku, but no product row does$/);
    expectViolation(report, 'G4', 'V-C', /^\d+ idempotency_records rows belong to this sku, but no product row does$/);
  });

  it('G2: a second effect under one Idempotency-Key fails verify, even with a valid hash chain', async () => {
    const db = await loadedDatabase();
    // A forged copy of a keyed rejection, appended with a correct hash and version: only G2 can see it.
    const { rows } = await db.sql.query(`
      select e.quantity, e.code, e.idempotency_key, (extract(epoch from e.at) * 1000)::bigint::text as at_ms,
             p.total::int, p.reserved::int, p.purchased::int, p.version::int,
             (select h.hash from inventory_events h where h.sku = p.sku and h.seq = p.version) as head
        from inventory_events e join products p on p.sku = e.sku
       where e.sku = 'V-A' and e.type = 'rejected' and e.idempotency_key is not null and e.quantity is not null
       limit 1`);
    const r = rows[0];
    const forged: EventDraft = {
      seq: r.version + 1,
      type: 'rejected',
      reservationId: null,
      quantity: r.quantity,
      delta: null,
      reason: null,
      code: r.code,
      requestId: 'forged',
      idempotencyKey: r.idempotency_key,
      source: 'api',
      lateMs: null,
      expiresAtMs: null,
      total: r.total,
      reserved: r.reserved,
      purchased: r.purchased,
      atMs: Number(r.at_ms) + 1,
    };
    await db.sql.query(
      `
      insert into inventory_events (sku, seq, type, quantity, code, request_id, idempotency_key, source, total, reserved, purchased, at, hash)
      values ('V-A', $1, 'rejected', $2, $3, 'forged', $4, 'api', $5, $6, $7, to_timestamp($8::double precision / 1000), $9)`,
      [
        forged.seq,
        forged.quantity,
        forged.code,
        forged.idempotencyKey,
        forged.total,
        forged.reserved,
        forged.purchased,
        forged.atMs,
        eventHash(r.head, 'V-A', forged),
      ],
    );
    await db.sql.query(`update products set version = version + 1 where sku = 'V-A'`);
    const report = await verifyDatabase(db.url);
    expectViolation(report, 'G2', 'V-A', /took effect twice/);
    expect(report.violations).toHaveLength(1);
  });

  it('the CLI exits 0 on a sound database and 1, naming product and guarantee, on a broken one', async () => {
    const db = await loadedDatabase();
    const cli = () =>
      run(process.execPath, ['bin/secventory.js', 'verify'], {
        cwd: repoRoot,
        env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'silent' },
        timeout: 60_000,
      });
    const passed = await cli();
    expect(passed.stdout).toMatch(/^checked 3 products, \d+ events and \d+ reservations in [\d.]+ s\nOK: /);

    await db.sql.query(`update products set total = total + 1 where sku = 'V-A'`);
    const failed = await cli().then(
      () => null,
      (error: { code: number; stdout: string }) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stdout).toMatch(
      /FAILED: 1 violation\n {2}G7 \(auditability\) product V-A: replaying its events gives/,
    );
  });
});
