import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../../scripts/lib/server-process.ts';
import { http } from '../support/app.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';

let server: ServerProcess | undefined;
let db: TestDatabase | undefined;
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('resilience', () => {
  it("killing every database connection of the service (idle and busy) never crashes it: pool 'error' events are handled and it heals", async () => {
    db = await createTestDatabase();
    server = await startServerProcess(db.url, { SECVENTORY_SWEEP_INTERVAL_MS: '50' });
    const { url } = server;
    await http(url, 'POST', '/products', { body: { sku: 'RES-1', name: 'x', stock: 100_000 } });
    let n = 0;
    const load = async (ms: number) => {
      const until = Date.now() + ms;
      const statuses: number[] = [];
      while (Date.now() < until) {
        const batch = await Promise.all(
          Array.from({ length: 20 }, () =>
            http(url, 'POST', '/products/RES-1/reservations', { key: `res-${n++}`, body: { quantity: 1 } }),
          ),
        );
        statuses.push(...batch.map((r) => r.status));
      }
      return statuses;
    };
    for (let round = 0; round < 5; round++) {
      const running = load(400);
      await db.sql.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name = 'secventory'`,
      );
      const statuses = await running;
      expect(statuses.every((s) => s === 201 || s === 503)).toBe(true);
    }
    // Idle connections die too: wait until the pool holds idle ones, then kill them.
    await db.sql.query(
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name = 'secventory'`,
    );
    await waitUntil(
      async () => (await http(url, 'GET', '/health/ready')).status === 200,
      10_000,
      'the service is ready again',
    );
    const after = await http(url, 'POST', '/products/RES-1/reservations', {
      key: 'after-the-storm',
      body: { quantity: 1 },
    });
    expect(after.status).toBe(201);
    expect(server.rssBytes()).toBeGreaterThan(0); // the process is alive
  });
});
