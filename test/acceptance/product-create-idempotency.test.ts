import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { startTestApp, type HttpResponse, type TestApp } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

// POST /products with an Idempotency-Key, through real HTTP: the first answer is stored with the
// product and replayed, the key is scoped to the sku, and two instances over one database agree.

let db: TestDatabase;
/** Two instances of the service over one database. */
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

const create = (t: TestApp, key: string | undefined, body: { sku: string; name: string; stock: number }) =>
  t.http('POST', '/products', { key, body });

const replayed = (res: HttpResponse<unknown>) => res.headers['idempotent-replayed'];

async function eventsOf(sku: string) {
  return (await a.http('GET', `/products/${sku}/events`)).body.events as Record<string, unknown>[];
}

async function recordOf(sku: string, key: string) {
  const { rows } = await db.sql.query(
    'select fingerprint, outcome from idempotency_records where sku = $1::text and key = $2::text',
    [sku, key],
  );
  return rows;
}

describe('POST /products with an Idempotency-Key', () => {
  it('G2: the same key and body again replays the stored 201, flagged idempotent-replayed', async () => {
    const first = await create(a, 'k-1', { sku: 'IK-1', name: 'Widget', stock: 10 });
    const again = await create(a, 'k-1', { sku: 'IK-1', name: 'Widget', stock: 10 });
    expect(first.status).toBe(201);
    expect(replayed(first)).toBeUndefined();
    expect(again.status).toBe(201);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(first.body);
  });

  it('G2: a replay is the stored answer, not the product now: it shows the inventory as created', async () => {
    const first = await create(a, 'k-2', { sku: 'IK-2', name: 'Widget', stock: 10 });
    const reserved = await a.http('POST', '/products/IK-2/reservations', { key: 'r-1', body: { quantity: 3 } });
    expect(reserved.status).toBe(201);
    const again = await create(a, 'k-2', { sku: 'IK-2', name: 'Widget', stock: 10 });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.body.inventory).toMatchObject({ reserved: 0, available: 10, version: 1 });
  });

  it('the same key with a different name or stock is 422 idempotency_key_reused and changes nothing', async () => {
    await create(a, 'k-3', { sku: 'IK-3', name: 'Widget', stock: 10 });
    const otherName = await create(a, 'k-3', { sku: 'IK-3', name: 'Gadget', stock: 10 });
    const otherStock = await create(a, 'k-3', { sku: 'IK-3', name: 'Widget', stock: 11 });
    for (const res of [otherName, otherStock]) {
      expect(res.status).toBe(422);
      expect(res.body.code).toBe('idempotency_key_reused');
    }
    const product = await a.http('GET', '/products/IK-3');
    expect(product.body).toMatchObject({ name: 'Widget', inventory: { total: 10, version: 1 } });
    expect(await recordOf('IK-3', 'k-3')).toHaveLength(1);
  });

  it('G4: the record is stored with the product: fingerprint and the 201 answer, in idempotency_records', async () => {
    const first = await create(a, 'k-4', { sku: 'IK-4', name: 'Widget', stock: 10 });
    const [record] = await recordOf('IK-4', 'k-4');
    expect(record.fingerprint).toBe('create:10:"Widget"');
    expect(record.outcome).toEqual({ kind: 'product', created: true, product: first.body });
  });

  it('G7: the product_created event carries the key and the request id', async () => {
    const body = { sku: 'IK-5', name: 'Widget', stock: 10 };
    await a.http('POST', '/products', { key: 'k-5', body, headers: { 'x-request-id': 'create-ik-5' } });
    const [created] = await eventsOf('IK-5');
    expect(created).toMatchObject({ seq: 1, type: 'product_created', idempotencyKey: 'k-5', requestId: 'create-ik-5' });
  });

  it('a key is scoped to its product: the same key creates two different products', async () => {
    const one = await create(a, 'k-shared', { sku: 'IK-6A', name: 'One', stock: 1 });
    const two = await create(a, 'k-shared', { sku: 'IK-6B', name: 'Two', stock: 2 });
    expect([one.status, two.status]).toEqual([201, 201]);
    expect([replayed(one), replayed(two)]).toEqual([undefined, undefined]);
    expect(two.body).toMatchObject({ sku: 'IK-6B', name: 'Two', inventory: { total: 2 } });
  });

  it('a key spent on a reservation of the product is 422 idempotency_key_reused on a create of it', async () => {
    await create(a, undefined, { sku: 'IK-7', name: 'Widget', stock: 10 });
    await a.http('POST', '/products/IK-7/reservations', { key: 'k-7', body: { quantity: 1 } });
    const res = await create(a, 'k-7', { sku: 'IK-7', name: 'Widget', stock: 10 });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('idempotency_key_reused');
  });

  it('a new key on an existing product with the same name and stock answers 200, and replays that 200', async () => {
    await create(a, undefined, { sku: 'IK-8', name: 'Widget', stock: 10 });
    const first = await create(a, 'k-8', { sku: 'IK-8', name: 'Widget', stock: 10 });
    await a.http('POST', '/products/IK-8/reservations', { key: 'r-8', body: { quantity: 4 } });
    const again = await create(a, 'k-8', { sku: 'IK-8', name: 'Widget', stock: 10 });
    expect(first.status).toBe(200);
    expect(replayed(first)).toBeUndefined();
    expect(again.status).toBe(200);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(again.body.inventory.reserved).toBe(0);
  });

  it('a new key with a different name is 409 product_exists, replayed as such; the product is unchanged', async () => {
    await create(a, undefined, { sku: 'IK-9', name: 'Widget', stock: 10 });
    const first = await create(a, 'k-9', { sku: 'IK-9', name: 'Gadget', stock: 10 });
    const again = await create(a, 'k-9', { sku: 'IK-9', name: 'Gadget', stock: 10 });
    expect(first.status).toBe(409);
    expect(first.body.code).toBe('product_exists');
    expect(again.status).toBe(409);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(first.body);
    // Like product_exists without a key: no audit event, the product keeps its version.
    expect((await a.http('GET', '/products/IK-9/inventory')).body).toMatchObject({ total: 10, version: 1 });
    expect(await eventsOf('IK-9')).toHaveLength(1);
  });

  it('G2: the same key sent 50 times at once creates the product once; every answer is the stored 201', async () => {
    const body = { sku: 'IK-10', name: 'Hot', stock: 5 };
    const answers = await Promise.all(Array.from({ length: 50 }, () => create(a, 'k-storm', body)));
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 201));
    expect(answers.filter((r) => replayed(r) === undefined)).toHaveLength(1);
    for (const r of answers) expect(r.body).toEqual(answers[0]!.body);
    expect(await eventsOf('IK-10')).toHaveLength(1);
  });

  it('G2: a key used on one instance replays on another over the same database', async () => {
    const first = await create(a, 'k-11', { sku: 'IK-11', name: 'Widget', stock: 10 });
    const again = await create(b, 'k-11', { sku: 'IK-11', name: 'Widget', stock: 10 });
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(first.body);
  });

  it('G2: the same key sent at once via two instances creates the product once; all get the stored 201', async () => {
    const body = { sku: 'IK-12', name: 'Hot', stock: 5 };
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => create(i % 2 === 0 ? a : b, 'k-12', body)));
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 201));
    expect(answers.filter((r) => replayed(r) === undefined)).toHaveLength(1);
    for (const r of answers) expect(r.body).toEqual(answers[0]!.body);
    expect(await eventsOf('IK-12')).toHaveLength(1);
  });

  it('G7: verify passes on products created with keys', async () => {
    const report = await verifyDatabase(db.url);
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
  });
});

describe('the hash chain covers the key of product_created', () => {
  it("G7: an edited key on a product_created event breaks the product's hash chain", async () => {
    const own = await createTestDatabase();
    const t = await startTestApp({ db: own });
    try {
      expect((await create(t, 'k-chain', { sku: 'IK-CHAIN', name: 'Widget', stock: 10 })).status).toBe(201);
      const client = await own.sql.connect();
      try {
        // As an operator with table rights could: the append-only trigger off for one edit.
        await client.query('alter table inventory_events disable trigger user');
        await client.query(`update inventory_events set idempotency_key = 'forged' where sku = 'IK-CHAIN' and seq = 1`);
      } finally {
        await client.query('alter table inventory_events enable trigger user');
        client.release();
      }
      const report = await verifyDatabase(own.url);
      expect(report.ok).toBe(false);
      const broken = { guarantee: 'G7', sku: 'IK-CHAIN', message: expect.stringMatching(/hash chain broken at seq 1/) };
      expect(report.violations).toContainEqual(expect.objectContaining(broken));
    } finally {
      await t.close();
      await own.drop();
    }
  });
});
