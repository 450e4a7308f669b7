import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { waitUntil } from '../support/database.ts';
import { sendRaw } from '../hardening/raw-http.ts';

// The refusals /openapi.json declares on every route, and the form every refusal takes:
// problem+json with a stable code and an x-request-id, also when the HTTP parser or the
// shutdown answers instead of a route.

let t: TestApp;
let reservationId: string;

/** A request each operation accepts, so that an unknown query parameter is its only fault. */
const acceptedRequests: Record<string, { body?: unknown; key?: string }> = {
  createProduct: { body: { sku: 'HR-NEW', name: 'never created', stock: 1 }, key: 'hr-create' },
  adjustStock: { body: { delta: 1, reason: 'never applied' }, key: 'hr-adjust' },
  reserve: { body: { quantity: 1 }, key: 'hr-reserve' },
  purchaseReservation: {},
  cancelReservation: {},
  reserveCart: { body: { lines: [{ sku: 'HR-1', quantity: 1 }] }, key: 'hr-cart' },
  extendReservation: { body: { ttlSeconds: 60 } },
  createProducts: { body: { products: [{ sku: 'HR-BULK', name: 'never created', stock: 1 }] }, key: 'hr-bulk' },
  adjustStockInBulk: {
    body: { adjustments: [{ sku: 'HR-1', delta: 1, reason: 'never applied' }] },
    key: 'hr-adjust-bulk',
  },
};

beforeAll(async () => {
  t = await startTestApp();
  expect((await t.http('POST', '/products', { body: { sku: 'HR-1', name: 'refusals', stock: 10 } })).status).toBe(201);
  const reserved = await t.http('POST', '/products/HR-1/reservations', { key: 'hr-setup', body: { quantity: 1 } });
  expect(reserved.status).toBe(201);
  reservationId = reserved.body.id;
});

afterAll(async () => {
  await t?.close();
});

describe('query parameters', () => {
  it('every operation refuses an unknown query parameter with 400 validation_failed, and does nothing', async () => {
    const doc = (await t.http('GET', '/openapi.json')).body;
    for (const [template, methods] of Object.entries(
      doc.paths as Record<string, Record<string, { operationId: string }>>,
    )) {
      for (const [method, { operationId }] of Object.entries(methods)) {
        const path = template.replace('{sku}', 'HR-1').replace('{id}', reservationId);
        const accepted = method === 'get' ? {} : acceptedRequests[operationId];
        if (accepted === undefined)
          throw new Error(`no accepted request for ${operationId}: add one to acceptedRequests`);
        const res = await t.http(method.toUpperCase(), `${path}?unknown=1`, accepted);
        const seen = {
          operationId,
          status: res.status,
          code: res.body.code,
          detail: String(res.body.detail).split(' ')[0],
        };
        expect(seen).toEqual({ operationId, status: 400, code: 'validation_failed', detail: 'querystring' });
      }
    }
    expect((await t.http('GET', '/products/HR-NEW')).status).toBe(404);
    expect((await t.http('GET', `/reservations/${reservationId}`)).body.status).toBe('active');
    expect((await t.http('GET', '/products/HR-1/inventory')).body).toMatchObject({ total: 10, reserved: 1 });
  });

  it('an integer query parameter is decimal digits: a sign, fraction, exponent, hex or space is 400', async () => {
    for (const value of ['+1', '-0', '1.0', '1e3', '0x10', '%2012', '12%20', '']) {
      const res = await t.http('GET', `/events?after=${value}`);
      expect({ value, status: res.status, code: res.body.code }).toEqual({
        value,
        status: 400,
        code: 'validation_failed',
      });
    }
    expect((await t.http('GET', '/events?after=1&after=2')).status).toBe(400);
    expect((await t.http('GET', '/actors?limit=007')).status).toBe(200);
    expect(
      (await t.http('GET', '/products/HR-1/events?after=0001&limit=1')).body.events.map((e: { seq: number }) => e.seq),
    ).toEqual([2]);
  });
});

describe('refusals by the HTTP parser', () => {
  it('a NUL byte in a header is 400 validation_failed as problem+json with an x-request-id', async () => {
    const res = await sendRaw(t.baseUrl, {
      method: 'GET',
      target: '/health/live',
      headers: [['x-note', Buffer.from([0x61, 0x00, 0x62])]],
    });
    expect(res.status).toBe(400);
    expect(res.contentType).toBe('application/problem+json');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(res.body)).toMatchObject({
      status: 400,
      code: 'validation_failed',
      type: 'https://secventory.dev/problems/validation-failed',
    });
  });

  it('headers larger than the server accepts are 431 headers_too_large as problem+json', async () => {
    const res = await sendRaw(t.baseUrl, {
      method: 'GET',
      target: '/health/live',
      headers: [['x-note', 'a'.repeat(64 * 1024)]],
    });
    expect({ status: res.status, contentType: res.contentType }).toEqual({
      status: 431,
      contentType: 'application/problem+json',
    });
    expect(JSON.parse(res.body)).toMatchObject({ status: 431, code: 'headers_too_large' });
  });
});

describe('JSON bodies', () => {
  it('when a key appears twice in a body, the last one wins, as in JSON.parse', async () => {
    const rawBody = '{"sku": "HR-DUP", "name": "twice", "stock": 5, "stock": 7}';
    const res = await t.http('POST', '/products', { rawBody, headers: { 'content-type': 'application/json' } });
    expect({ status: res.status, total: res.body.inventory.total }).toEqual({ status: 201, total: 7 });
  });
});

describe('Idempotency-Key', () => {
  it('a malformed key is 400 idempotency_key_required also where it is optional; nothing is created', async () => {
    for (const key of ['k'.repeat(256), 'tab\tkey']) {
      const res = await t.http('POST', '/products', { key, body: { sku: 'HR-KEY', name: 'x', stock: 1 } });
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: 'idempotency_key_required' });
    }
    expect((await t.http('GET', '/products/HR-KEY')).status).toBe(404);
  });
});

/** Reads everything the server sends on `socket` until it closes the connection. */
function readUntilClosed(socket: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

const refusesConnections = (port: number) =>
  new Promise<boolean>((resolve) => {
    const probe = connect({ host: '127.0.0.1', port });
    probe.on('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.on('error', () => resolve(true));
  });

describe('shutdown', () => {
  it('a request during shutdown is 503 overloaded problem+json with Retry-After; the connection closes', async () => {
    const s = await startTestApp();
    const { hostname, port } = new URL(s.baseUrl);
    const socket = connect({ host: hostname, port: Number(port) });
    const received = readUntilClosed(socket);
    const body = JSON.stringify({ sku: 'SHUT-1', name: 'in flight', stock: 1 });
    // The first request is routed (its 100 Continue is sent once it is) before the shutdown
    // starts; its body comes after, together with a second request on the same connection.
    socket.write(
      `POST /products HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\nexpect: 100-continue\r\n\r\n`,
    );
    await waitUntil(async () => socket.bytesRead > 0, 10_000, 'the server answered 100 Continue');
    const stopping = s.app.stop();
    await waitUntil(() => refusesConnections(Number(port)), 10_000, 'the server stopped accepting connections');
    socket.write(`${body}GET /health/live HTTP/1.1\r\nhost: ${hostname}\r\n\r\n`);
    const answers = await received;
    await stopping;
    await s.close();

    const second = answers.slice(answers.lastIndexOf('HTTP/1.1 '));
    expect(answers).toContain('HTTP/1.1 201 Created');
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    expect(second).toMatch(/^content-type: application\/problem\+json/im);
    expect(second).toMatch(/^retry-after: 1\r$/im);
    expect(second).toMatch(/^connection: close\r$/im);
    expect(second).toMatch(/^x-request-id: /im);
    expect(JSON.parse(second.slice(second.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 503, code: 'overloaded' });
  });
});
