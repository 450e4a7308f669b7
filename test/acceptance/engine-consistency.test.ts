import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  cleanup.push(() => db.drop());
  return db;
}

async function app(db: TestDatabase, env: Record<string, string> = {}): Promise<TestApp> {
  const t = await startTestApp({ db, env });
  cleanup.push(() => t.close());
  return t;
}

describe('engine consistency', () => {
  it('G6 (criterion 5): a reservation whose TTL ran out while the service was stopped is expired after restart', async () => {
    const db = await database();
    const first = await app(db);
    await first.http('POST', '/products', { body: { sku: 'DOWN-1', name: 'x', stock: 5 } });
    const r = (
      await first.http('POST', '/products/DOWN-1/reservations', { key: 'k', body: { quantity: 2, ttlSeconds: 1 } })
    ).body;
    await first.close();
    const expiresAtMs = Date.parse(r.expiresAt);
    await waitUntil(() => Date.now() > expiresAtMs + 100, 5000, 'the TTL ran out');
    const { rows } = await db.sql.query(`select status from reservations where id = $1`, [r.id]);
    expect(rows[0].status).toBe('active'); // nobody was there to expire it

    const second = await app(db);
    await waitUntil(
      async () => (await second.http('GET', `/reservations/${r.id}`)).body.status === 'expired',
      5000,
      'the restarted sweeper expired it',
    );
    expect((await second.http('GET', '/products/DOWN-1/inventory')).body).toMatchObject({ reserved: 0, available: 5 });
    const events = await db.sql.query(
      `select type, source, late_ms from inventory_events where reservation_id = $1 order by seq`,
      [r.id],
    );
    expect(events.rows.map((e) => e.type)).toEqual(['reserved', 'expired']);
    expect(events.rows[1].source).toBe('sweeper');
    expect(Number(events.rows[1].late_ms)).toBeGreaterThan(0);
  });

  it('a mixed load over several products (reserve, purchase, cancel, expire, adjust) ends with counters equal to the sums over reservation rows', async () => {
    const db = await database();
    const t = await app(db);
    const skus = ['MIX-A', 'MIX-B', 'MIX-C', 'MIX-D'];
    for (const sku of skus) await t.http('POST', '/products', { body: { sku, name: sku, stock: 200 } });
    let seq = 0;
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 600; i++) {
      const sku = skus[i % skus.length]!;
      const n = seq++;
      work.push(
        (async () => {
          const ttlSeconds = n % 5 === 0 ? 1 : 600;
          const r = await t.http('POST', `/products/${sku}/reservations`, {
            key: `mix-${n}`,
            body: { quantity: 1 + (n % 3), ttlSeconds },
          });
          if (r.status !== 201) return;
          if (n % 4 === 1) await t.http('POST', `/reservations/${r.body.id}/purchase`);
          if (n % 4 === 2) await t.http('POST', `/reservations/${r.body.id}/cancel`);
          if (n % 50 === 3)
            await t.http('POST', `/products/${sku}/stock-adjustments`, {
              key: `adj-${n}`,
              body: { delta: n % 100 === 3 ? 5 : -3, reason: 'count' },
            });
        })(),
      );
    }
    await Promise.all(work);
    await waitUntil(
      async () => {
        const { rows } = await db.sql.query(
          `select count(*)::int as n from reservations where status = 'active' and expires_at < now()`,
        );
        return rows[0].n === 0;
      },
      10_000,
      'every due reservation was expired',
    );
    expect(await databaseViolations(db.sql)).toEqual([]);
    for (const sku of skus) {
      const inv = (await t.http('GET', `/products/${sku}/inventory`)).body;
      const row = (
        await db.sql.query(
          `select total::int, reserved::int, purchased::int, version::int from products where sku = $1`,
          [sku],
        )
      ).rows[0];
      expect(inv).toMatchObject(row);
    }
  });

  it('version conflicts: two engine instances on one database never lose or duplicate an update', async () => {
    const db = await database();
    const a = await app(db);
    const b = await app(db);
    await a.http('POST', '/products', { body: { sku: 'TWO-1', name: 'x', stock: 300 } });
    const answers = await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        (i % 2 ? a : b).http('POST', '/products/TWO-1/reservations', { key: `two-${i}`, body: { quantity: 1 } }),
      ),
    );
    const created = answers.filter((r) => r.status === 201).length;
    const refused = answers.filter((r) => r.status === 409).length;
    const unavailable = answers.filter((r) => r.status === 503).length;
    expect(created + refused + unavailable).toBe(400);
    // Retry what was not acknowledged, with the same keys, through the other instance.
    const retried = await Promise.all(
      answers.map((r, i) =>
        r.status === 503
          ? (i % 2 ? b : a).http('POST', '/products/TWO-1/reservations', { key: `two-${i}`, body: { quantity: 1 } })
          : Promise.resolve(r),
      ),
    );
    const createdIds = new Set(retried.filter((r) => r.status === 201).map((r) => r.body.id));
    expect(createdIds.size).toBe(300);
    const { rows } = await db.sql.query(
      `select reserved::int, (select count(*)::int from reservations where sku = 'TWO-1') as rows from products where sku = 'TWO-1'`,
    );
    expect(rows[0]).toEqual({ reserved: 300, rows: 300 });
    expect(await databaseViolations(db.sql)).toEqual([]);
    // Both instances answer the same committed inventory.
    for (const t of [a, b])
      expect((await t.http('GET', '/products/TWO-1/inventory')).body).toMatchObject({ reserved: 300, available: 0 });
  });
});
