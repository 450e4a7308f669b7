import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../../scripts/lib/server-process.ts';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { http } from '../support/app.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { PrometheusSamples } from '../support/prometheus.ts';

const servers: ServerProcess[] = [];
let db: TestDatabase | undefined;
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await db?.drop();
});

const storm = Number(process.env.STORM_REQUESTS ?? 3000);
const stock = Math.floor(storm / 3);

describe('several instances on one database', () => {
  it(`three serve processes, one hot SKU stormed through all three (${storm} requests, stock ${stock}): zero oversells, every acknowledgement durable, verify passes`, async () => {
    db = await createTestDatabase();
    for (let i = 0; i < 3; i++) servers.push(await startServerProcess(db.url, { SECVENTORY_SWEEP_INTERVAL_MS: '500' }));
    const [a] = servers;
    expect((await http(a!.url, 'POST', '/products', { body: { sku: 'STORM-1', name: 'x', stock } })).status).toBe(201);

    const send = (i: number, via: number) =>
      http(servers[via % 3]!.url, 'POST', '/products/STORM-1/reservations', {
        key: `storm-${i}`,
        body: { quantity: 1 },
      });
    let answers = await Promise.all(Array.from({ length: storm }, (_, i) => send(i, i)));
    // What was not acknowledged (503) is retried with its key through another instance.
    for (let round = 1; round <= 5 && answers.some((r) => r.status === 503); round++) {
      answers = await Promise.all(answers.map((r, i) => (r.status === 503 ? send(i, i + round) : Promise.resolve(r))));
    }
    const created = answers.filter((r) => r.status === 201);
    const refused = answers.filter((r) => r.status === 409 && r.body.code === 'insufficient_stock');
    console.info(
      `multi-instance storm: ${created.length} created, ${refused.length} insufficient_stock, ${storm - created.length - refused.length} other`,
    );
    expect(created.length).toBe(stock);
    expect(refused.length).toBe(storm - stock);

    // Every acknowledged reservation is in the database, as acknowledged.
    const ids = created.map((r) => r.body.id);
    const { rows } = await db.sql.query(
      `select count(*)::int as n from reservations where id = any($1::uuid[]) and status = 'active' and quantity = 1`,
      [ids],
    );
    expect(rows[0].n).toBe(stock);
    const product = await db.sql.query(
      `select reserved::int, purchased::int, total::int from products where sku = 'STORM-1'`,
    );
    expect(product.rows[0]).toEqual({ reserved: stock, purchased: 0, total: stock });
    expect(await databaseViolations(db.sql)).toEqual([]);
    const report = await verifyDatabase(db.url);
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);

    // Without SKU affinity the instances raced for the product row: the conflicts were counted.
    let conflicts = 0;
    for (const s of servers) {
      const text = await (await fetch(`${s.url}/metrics`)).text();
      conflicts += new PrometheusSamples(text).value('secventory_version_conflicts_total');
    }
    console.info(`multi-instance storm: ${conflicts} version conflicts across the three instances`);
    expect(conflicts).toBeGreaterThan(0);
  });
});
