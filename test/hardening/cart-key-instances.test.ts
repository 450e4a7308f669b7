import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { systemClock } from '../../src/engine/clock.ts';
import type { CartLine } from '../../src/engine/decide-cart.ts';
import type { CommandResult } from '../../src/engine/types.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startEngine, type EngineInstance } from '../support/engine.ts';

// A cart's Idempotency-Key across two instances over one database. Within an instance a duplicate
// in flight waits for the first; across instances nothing serializes them but the database: the
// second commit finds the key's record (a unique key) or the products moved, and the cart lane
// answers it from the record - without failing the carts batched with it.

let db: TestDatabase;
let instances: EngineInstance[];
const skus = ['K-A', 'K-B', 'K-C', 'K-D'];

beforeAll(async () => {
  db = await createTestDatabase();
  instances = [startEngine(db.url, systemClock), startEngine(db.url, systemClock)];
  for (const sku of skus) {
    expect((await instances[0]!.registry.createProduct(sku, sku, 1000, 'setup')).type).toBe('created');
  }
});
afterAll(async () => {
  await Promise.all(instances.map((i) => i.stop()));
  await db?.drop();
});

/** A new cart through one instance; like the API, every request gets a fresh reservation id. */
const cart = (via: number, key: string, lines: CartLine[]): Promise<CommandResult> =>
  instances[via]!.registry.executeCart({
    type: 'reserve',
    reservationId: randomUUID(),
    lines,
    ttlSeconds: 600,
    idempotencyKey: key,
    requestId: `req-${randomUUID()}`,
  });

const lines = (...of: string[]): CartLine[] => of.map((sku) => ({ sku, quantity: 1 }));
const reservationOf = (r: CommandResult) =>
  r.type === 'done' && r.outcome.kind === 'reservation' ? r.outcome.reservation.id : null;

describe('a cart Idempotency-Key on two instances', () => {
  it('G2: the same cart in flight on two instances at once: both answer the same reservation, one as a replay, and it exists once', async () => {
    const rounds = 12;
    for (let round = 0; round < rounds; round++) {
      const key = `both-${round}`;
      const answers = await Promise.all([0, 1].map((via) => cart(via, key, lines('K-A', 'K-B', 'K-C'))));
      expect(answers.map((a) => a.type)).toEqual(['done', 'done']);
      const [first, second] = answers as Extract<CommandResult, { type: 'done' }>[];
      expect(second!.outcome).toEqual(first!.outcome);
      expect([first!.replayed, second!.replayed].sort()).toEqual([false, true]);
      const { rows } = await db.sql.query(`select id::text, sku from reservations where id = $1 order by sku`, [
        reservationOf(first!),
      ]);
      expect(rows.map((r) => r.sku)).toEqual(['K-A', 'K-B', 'K-C']);
    }
    const { rows } = await db.sql.query(`select count(distinct id)::int as n from reservations`);
    expect(rows[0].n).toBe(rounds);
    expect(await databaseViolations(db.sql)).toEqual([]);
    const report = await verifyDatabase(db.url);
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it('G2: a cart whose key another instance used meanwhile replays its record, and the carts batched with it commit', async () => {
    const first = await cart(0, 'meanwhile', lines('K-A', 'K-D'));
    // Three carts sent together are one batch of instance 1; its commit finds the key used.
    const [again, other, another] = await Promise.all([
      cart(1, 'meanwhile', lines('K-A', 'K-D')),
      cart(1, 'other-1', lines('K-A', 'K-B')),
      cart(1, 'other-2', lines('K-C', 'K-D')),
    ]);
    expect(again).toEqual({ ...first, replayed: true });
    for (const r of [other, another]) expect(r).toMatchObject({ type: 'done', outcome: { created: true } });
    const { rows } = await db.sql.query(`select count(*)::int as n from reservations where id = any($1::uuid[])`, [
      [first, other, another].map(reservationOf),
    ]);
    expect(rows[0].n).toBe(6);
    expect(await databaseViolations(db.sql)).toEqual([]);
  });
});
