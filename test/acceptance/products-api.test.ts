import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

function expectProblem(
  res: { status: number; headers: Record<string, unknown>; body: any },
  status: number,
  code: string,
) {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toContain('application/problem+json');
  expect(res.body).toMatchObject({
    status,
    code,
    type: expect.any(String),
    title: expect.any(String),
    detail: expect.any(String),
  });
  expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts:\d+|select |insert |update /i);
}

describe('products', () => {
  it('POST /products creates a product with its inventory (201)', async () => {
    const res = await t.http('POST', '/products', { body: { sku: 'P-1', name: 'Widget', stock: 10 } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      sku: 'P-1',
      name: 'Widget',
      inventory: { sku: 'P-1', total: 10, reserved: 0, purchased: 0, available: 10, activeReservations: 0, version: 1 },
    });
    expect(Date.parse(res.body.createdAt)).not.toBeNaN();
  });

  it('creating the same sku with the same name and stock again is idempotent (200, same product)', async () => {
    const first = await t.http('POST', '/products', { body: { sku: 'P-2', name: 'Gadget', stock: 5 } });
    const again = await t.http('POST', '/products', { body: { sku: 'P-2', name: 'Gadget', stock: 5 } });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
  });

  it('creating the same sku with a different name or stock is 409 product_exists and changes nothing', async () => {
    await t.http('POST', '/products', { body: { sku: 'P-3', name: 'Thing', stock: 5 } });
    expectProblem(
      await t.http('POST', '/products', { body: { sku: 'P-3', name: 'Other', stock: 5 } }),
      409,
      'product_exists',
    );
    expectProblem(
      await t.http('POST', '/products', { body: { sku: 'P-3', name: 'Thing', stock: 6 } }),
      409,
      'product_exists',
    );
    const inv = await t.http('GET', '/products/P-3/inventory');
    expect(inv.body).toMatchObject({ total: 5, version: 1 });
  });

  it('GET /products/{sku} returns the product, and 404 product_not_found for an unknown sku', async () => {
    await t.http('POST', '/products', { body: { sku: 'P-4', name: 'Known', stock: 1 } });
    const res = await t.http('GET', '/products/P-4');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ sku: 'P-4', name: 'Known', inventory: { total: 1 } });
    expectProblem(await t.http('GET', '/products/NOPE'), 404, 'product_not_found');
    expectProblem(await t.http('GET', '/products/NOPE/inventory'), 404, 'product_not_found');
  });

  it('GET /products/{sku}/inventory returns the counters with available = total - reserved - purchased', async () => {
    await t.http('POST', '/products', { body: { sku: 'P-5', name: 'Counted', stock: 7 } });
    const res = await t.http('GET', '/products/P-5/inventory');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      sku: 'P-5',
      total: 7,
      reserved: 0,
      purchased: 0,
      available: 7,
      activeReservations: 0,
      version: 1,
    });
  });
});

describe('bad input is a 4xx problem+json and changes nothing', () => {
  it('an unknown route is 404 not_found', async () => {
    expectProblem(await t.http('GET', '/no/such/route'), 404, 'not_found');
  });

  it('malformed JSON is 400 validation_failed', async () => {
    expectProblem(
      await t.http('POST', '/products', { rawBody: '{"sku": ', headers: { 'content-type': 'application/json' } }),
      400,
      'validation_failed',
    );
  });

  it.each([
    ['a numeric string for an integer', { sku: 'B-1', name: 'x', stock: '10' }],
    ['a float for an integer', { sku: 'B-1', name: 'x', stock: 1.5 }],
    ['a stock above 2,147,483,647', { sku: 'B-1', name: 'x', stock: 2147483648 }],
    ['a negative stock', { sku: 'B-1', name: 'x', stock: -1 }],
    ['an unknown field', { sku: 'B-1', name: 'x', stock: 1, color: 'red' }],
    ['a missing field', { sku: 'B-1', stock: 1 }],
    ['a bad sku alphabet', { sku: 'B 1', name: 'x', stock: 1 }],
    ['an overlong sku', { sku: 'B'.repeat(65), name: 'x', stock: 1 }],
    ['an empty name', { sku: 'B-1', name: '', stock: 1 }],
    ['an overlong name', { sku: 'B-1', name: 'n'.repeat(201), stock: 1 }],
  ])('%s is 400 validation_failed', async (_what, body) => {
    expectProblem(await t.http('POST', '/products', { body }), 400, 'validation_failed');
    expectProblem(await t.http('GET', '/products/B-1'), 404, 'product_not_found');
  });

  // Written out as JSON text: as a JavaScript number literal, 2^53+1 would already be 2^53.
  it('a stock of 2^53+1 is 400 validation_failed', async () => {
    const rawBody = '{"sku":"B-1","name":"x","stock":9007199254740993}';
    const res = await t.http('POST', '/products', { rawBody, headers: { 'content-type': 'application/json' } });
    expectProblem(res, 400, 'validation_failed');
    expectProblem(await t.http('GET', '/products/B-1'), 404, 'product_not_found');
  });

  it('a body over 16 KiB is 413 payload_too_large', async () => {
    expectProblem(
      await t.http('POST', '/products', { body: { sku: 'B-2', name: 'x'.repeat(17 * 1024), stock: 1 } }),
      413,
      'payload_too_large',
    );
  });

  it('a body that is not JSON is 415 unsupported_media_type', async () => {
    expectProblem(
      await t.http('POST', '/products', {
        rawBody: 'sku=B-3',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      415,
      'unsupported_media_type',
    );
    expectProblem(
      await t.http('POST', '/products', { rawBody: 'hello', headers: { 'content-type': 'text/plain' } }),
      415,
      'unsupported_media_type',
    );
    expectProblem(await t.http('GET', '/products/B-3'), 404, 'product_not_found');
  });
});

describe('request ids', () => {
  it('echoes a client x-request-id', async () => {
    const res = await t.http('GET', '/health/live', { headers: { 'x-request-id': 'client-req-42' } });
    expect(res.headers['x-request-id']).toBe('client-req-42');
  });

  it('generates an x-request-id when none is sent, also on errors', async () => {
    const res = await t.http('GET', '/products/NOPE');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.code).toBe('product_not_found');
  });
});

describe('operations', () => {
  it('GET /health/live is 200', async () => {
    const res = await t.http('GET', '/health/live');
    expect(res.status).toBe(200);
  });

  it('GET /health/ready is 200 when the database answers and is migrated', async () => {
    const res = await t.http('GET', '/health/ready');
    expect(res.status).toBe(200);
  });

  it('GET /openapi.json documents every route of docs/API.md', async () => {
    const res = await t.http('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\./);
    for (const path of [
      '/products',
      '/products/{sku}',
      '/products/{sku}/inventory',
      '/products/{sku}/reservations',
      '/products/{sku}/stock-adjustments',
      '/products/bulk',
      '/stock-adjustments/bulk',
      '/reservations/{id}',
      '/reservations/{id}/purchase',
      '/reservations/{id}/cancel',
      '/health/live',
      '/health/ready',
    ]) {
      expect(Object.keys(res.body.paths)).toContain(path);
    }
  });

  it('GET /docs serves the API reference page', async () => {
    const res = await t.http('GET', '/docs/');
    expect(res.status).toBe(200);
    expect(String(res.headers['content-type'])).toContain('text/html');
  });
});

describe('refusals before routing', () => {
  it('a path parameter longer than any valid SKU is 400 validation_failed, as problem+json', async () => {
    expectProblem(await t.http('GET', `/products/${'a'.repeat(300)}/inventory`), 400, 'validation_failed');
  });

  it('a malformed URL is 400 validation_failed, as problem+json', async () => {
    expectProblem(await t.http('GET', '/products/%E0%A4%A'), 400, 'validation_failed');
  });
});
