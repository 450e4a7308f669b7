import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

// Two instances over one database without SKU affinity: one of them holds an old view of a
// product while the other writes. Its version-guarded write must reload and decide again.

let db: TestDatabase;
let a: TestApp;
let b: TestApp;
beforeAll(async () => {
  db = await createTestDatabase();
  a = await startTestApp({ db });
  b = await startTestApp({ db });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
});

/** B reads the product (and keeps that view); then A reserves: B's view is now stale. */
async function reservedBehindBsBack(sku: string): Promise<string> {
  expect((await a.http('POST', '/products', { body: { sku, name: sku, stock: 5 } })).status).toBe(201);
  expect((await b.http('GET', `/products/${sku}/inventory`)).body.reserved).toBe(0);
  const reserved = await a.http('POST', `/products/${sku}/reservations`, { key: `${sku}-r`, body: { quantity: 1 } });
  expect(reserved.status).toBe(201);
  return reserved.body.id;
}

describe('an instance whose view of a product is stale', () => {
  it('G3: cancels a reservation made through the other instance (200, stock back), not 500', async () => {
    const id = await reservedBehindBsBack('STALE-CANCEL');
    const cancelled = await b.http('POST', `/reservations/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    expect((await a.http('GET', '/products/STALE-CANCEL/inventory')).body).toMatchObject({ reserved: 0, available: 5 });
  });

  it('G3: purchases a reservation made through the other instance (200), not 500', async () => {
    const id = await reservedBehindBsBack('STALE-PURCHASE');
    const purchased = await b.http('POST', `/reservations/${id}/purchase`);
    expect(purchased.status).toBe(200);
    expect(purchased.body.status).toBe('purchased');
    expect((await b.http('GET', '/products/STALE-PURCHASE/inventory')).body).toMatchObject({
      reserved: 0,
      purchased: 1,
      available: 4,
    });
  });

  it('G4 G7: after both, the database verifies', async () => {
    const report = await verifyDatabase(db.url);
    expect(report.violations).toEqual([]);
  });
});
