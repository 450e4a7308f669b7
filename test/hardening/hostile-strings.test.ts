import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { startTestApp, type TestApp, type HttpResponse } from '../support/app.ts';

// PostgreSQL stores text as UTF-8 and cannot hold U+0000. A JSON string can carry both an
// unpaired surrogate ("\ud800", which PostgreSQL would store as U+FFFD, so the audit hash computed
// before the write no longer matches the stored event) and U+0000 (which PostgreSQL refuses, so
// the request failed with a 5xx the client was told to retry). Both are refused at the door.

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  await t.http('POST', '/products', { body: { sku: 'STR-1', name: 'target', stock: 100 } });
});
afterAll(async () => {
  await t?.close();
});

function expectRefused(res: HttpResponse<any>, field: string) {
  expect(res.status).toBe(400);
  expect(res.body.code).toBe('validation_failed');
  expect(res.body.detail).toContain(`/${field}`);
}

async function expectChainVerifies() {
  const report = await verifyDatabase(t.db.url);
  expect(report.violations).toEqual([]);
  expect(report.ok).toBe(true);
}

const version = async (sku: string) => (await t.http('GET', `/products/${sku}/inventory`)).body.version as number;

// The bodies are raw JSON text: "\\ud800" here is the six characters of the JSON escape.
describe('text PostgreSQL cannot store as sent', () => {
  it('G7: a reason with an unpaired surrogate is 400 validation_failed naming reason; the chain still verifies', async () => {
    const before = await version('STR-1');
    const res = await t.http('POST', '/products/STR-1/stock-adjustments', {
      key: 'adjust-surrogate',
      headers: { 'content-type': 'application/json' },
      rawBody: '{"delta":1,"reason":"\\ud800"}',
    });
    expectRefused(res, 'reason');
    expect(await version('STR-1')).toBe(before);
    await expectChainVerifies();
  });

  it('a name with an unpaired surrogate is 400 validation_failed naming name, and no product is created', async () => {
    const res = await t.http('POST', '/products', {
      headers: { 'content-type': 'application/json' },
      rawBody: '{"sku":"STR-2","name":"a\\udc00b","stock":1}',
    });
    expectRefused(res, 'name');
    expect((await t.http('GET', '/products/STR-2')).status).toBe(404);
  });

  it('U+0000 in a name is 400 validation_failed, not 503 storage_unavailable: a retry could never succeed', async () => {
    const res = await t.http('POST', '/products', { body: { sku: 'STR-3', name: 'nul\u0000name', stock: 1 } });
    expectRefused(res, 'name');
    expect((await t.http('GET', '/products/STR-3')).status).toBe(404);
  });

  it('U+0000 in a reason is 400 validation_failed, not 500 internal_error, and changes nothing', async () => {
    const before = await version('STR-1');
    const res = await t.http('POST', '/products/STR-1/stock-adjustments', {
      key: 'adjust-nul',
      body: { delta: 1, reason: '\u0000' },
    });
    expectRefused(res, 'reason');
    expect(await version('STR-1')).toBe(before);
    await expectChainVerifies();
  });

  it("a path or query parameter with U+0000 or a lone surrogate's bytes is 400 validation_failed, never a 5xx", async () => {
    const targets = [
      '/products/%00',
      '/products/%00/inventory',
      '/products/%ED%A0%80',
      '/products/STR-1/events?after=%00',
      '/products/STR-1/events?limit=%ED%A0%80',
      '/events?after=%00',
      '/events?sku=%00',
      '/reservations/%00',
      '/reservations/%ED%B0%80/events',
      '/actors?limit=%00',
    ];
    for (const target of targets) {
      const res = await t.http('GET', target);
      expect({ target, status: res.status, code: res.body.code }).toEqual({
        target,
        status: 400,
        code: 'validation_failed',
      });
    }
  });
});

describe('text PostgreSQL stores as sent', () => {
  it('G7: characters outside the BMP and control characters other than U+0000 are kept exactly, and the chain verifies', async () => {
    const name = '💥 tab\t bell\u0007 unit\u001f line\u2028 é \ud83d\ude00';
    const reason = '𝄞 start\u0001 \ufffd\ufeff';
    const created = await t.http('POST', '/products', { body: { sku: 'STR-4', name, stock: 5 } });
    expect(created.status).toBe(201);
    expect((await t.http('GET', '/products/STR-4')).body.name).toBe(name);
    const adjusted = await t.http('POST', '/products/STR-4/stock-adjustments', {
      key: 'adjust-astral',
      body: { delta: 2, reason },
    });
    expect(adjusted.status).toBe(200);
    const events = (await t.http('GET', '/products/STR-4/events')).body.events;
    expect(events.at(-1)).toMatchObject({ type: 'stock_adjusted', reason });
    await expectChainVerifies();
  });
});
