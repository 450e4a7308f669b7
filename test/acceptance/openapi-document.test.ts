import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCodes } from '../../src/api/errors.ts';
import { idempotencyKeyPattern } from '../../src/engine/limits.ts';
import { startTestApp, type TestApp } from '../support/app.ts';

// The OpenAPI document as served at GET /openapi.json: what the linters say of it, and what a
// client generator reads from it. Each test names one thing a client relies on.

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);
// Offline machines: no usage report, no update check.
const lintEnv = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };

interface Operation {
  operationId?: string;
  tags?: string[];
  parameters?: { in: string; name: string; required?: boolean; schema: Record<string, unknown> }[];
  responses: Record<
    string,
    {
      headers?: Record<string, { required?: boolean; schema: Record<string, unknown> }>;
      content?: Record<string, { schema: unknown }>;
    }
  >;
}

let t: TestApp;
let dir: string;
let file: string;
let doc: any;

/** Every operation of the document, with its method and path. */
function operations(): { method: string; path: string; op: Operation }[] {
  return Object.entries(doc.paths as Record<string, Record<string, Operation>>).flatMap(([p, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ method, path: p, op })),
  );
}

beforeAll(async () => {
  t = await startTestApp();
  doc = (await t.http('GET', '/openapi.json')).body;
  dir = await mkdtemp(path.join(os.tmpdir(), 'secventory-openapi-'));
  file = path.join(dir, 'openapi.json');
  await writeFile(file, JSON.stringify(doc, null, 2));
});

afterAll(async () => {
  await t?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('linting the served document', () => {
  it('Redocly (recommended, redocly.yaml) finds no error and no warning', async () => {
    const result = await run(
      bin('redocly'),
      ['lint', '--config', path.join(root, 'redocly.yaml'), '--format', 'json', file],
      { env: lintEnv },
    ).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
    const report = JSON.parse(result.stdout);
    const problems = report.problems.map((p: { ruleId: string; message: string }) => `${p.ruleId}: ${p.message}`);
    expect({ totals: report.totals, problems }).toEqual({
      totals: { errors: 0, warnings: 0, ignored: 0 },
      problems: [],
    });
  }, 120_000);

  it('Spectral (spectral:oas, .spectral.yaml) finds no error and no warning', async () => {
    const output = path.join(dir, 'spectral.json');
    const args = [
      'lint',
      '--ruleset',
      path.join(root, '.spectral.yaml'),
      '--format',
      'json',
      '--output',
      output,
      '--fail-severity',
      'warn',
      file,
    ];
    // It exits non-zero on a warning: the report in `output` says which.
    await run(bin('spectral'), args, { env: lintEnv }).catch(() => undefined);
    const results = JSON.parse(await readFile(output, 'utf8'));
    const found = results
      .filter((r: { severity: number }) => r.severity <= 1)
      .map((r: { code: string; message: string; path: string[] }) => `${r.code}: ${r.message} at ${r.path.join('.')}`);
    expect(found).toEqual([]);
  }, 120_000);
});

describe('what a client reads from the document', () => {
  it('every 4xx and 5xx is problem+json with the named Problem, whose code lists every code of errors.ts', () => {
    expect(doc.components.schemas.Problem.properties.code.enum).toEqual(errorCodes);
    for (const { method, path: p, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses).filter(([s]) => Number(s) >= 400)) {
        expect({ at: `${method} ${p} ${status}`, content: response.content }).toEqual({
          at: `${method} ${p} ${status}`,
          content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
        });
      }
    }
  });

  it('the bodies have names: Product, Inventory, Reservation, Event, EventPage and the request bodies', () => {
    for (const name of [
      'Product',
      'Inventory',
      'Reservation',
      'Event',
      'EventPage',
      'NewProduct',
      'ReservationRequest',
      'StockAdjustment',
      'BulkProductsRequest',
      'BulkProductResults',
      'BulkAdjustmentsRequest',
      'BulkAdjustmentResults',
    ]) {
      expect(doc.components.schemas).toHaveProperty(name);
    }
    const ok = (p: string, method: string, status: string) =>
      doc.paths[p][method].responses[status].content['application/json'].schema;
    expect(ok('/products/{sku}', 'get', '200')).toEqual({ $ref: '#/components/schemas/Product' });
    expect(ok('/products/{sku}/inventory', 'get', '200')).toEqual({ $ref: '#/components/schemas/Inventory' });
    expect(ok('/products/{sku}/reservations', 'post', '201')).toEqual({ $ref: '#/components/schemas/Reservation' });
    expect(ok('/events', 'get', '200')).toEqual({ $ref: '#/components/schemas/EventPage' });
    expect(ok('/products/bulk', 'post', '200')).toEqual({ $ref: '#/components/schemas/BulkProductResults' });
    expect(ok('/stock-adjustments/bulk', 'post', '200')).toEqual({
      $ref: '#/components/schemas/BulkAdjustmentResults',
    });
    expect(doc.components.schemas.Product.properties.inventory).toEqual({ $ref: '#/components/schemas/Inventory' });
  });

  it('Idempotency-Key is required with its pattern on reserve and stock adjustment, optional on other POSTs', () => {
    const keyOf = (p: string) =>
      doc.paths[p].post.parameters.find(
        (x: { in: string; name: string }) => x.in === 'header' && x.name === 'idempotency-key',
      );
    for (const p of ['/products/{sku}/reservations', '/products/{sku}/stock-adjustments', '/stock-adjustments/bulk']) {
      expect(keyOf(p)).toMatchObject({
        required: true,
        schema: { pattern: idempotencyKeyPattern.source, maxLength: 255 },
      });
    }
    for (const p of ['/products', '/products/bulk', '/reservations/{id}/purchase', '/reservations/{id}/cancel']) {
      expect(keyOf(p)).toMatchObject({ required: false, schema: { pattern: idempotencyKeyPattern.source } });
    }
  });

  it('every answer declares x-request-id, every 503 Retry-After, keyed 2xx and 409 idempotent-replayed', () => {
    for (const { method, path: p, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses)) {
        const at = `${method} ${p} ${status}`;
        expect({ at, required: response.headers?.['x-request-id']?.required }).toEqual({ at, required: true });
        if (status === '503')
          expect({ at, retryAfter: response.headers?.['retry-after'] }).toMatchObject({
            at,
            retryAfter: { required: true, schema: { type: 'integer' } },
          });
        const keyed = op.parameters?.some((x) => x.name === 'idempotency-key') ?? false;
        if (keyed && (status.startsWith('2') || status === '409'))
          expect({ at, replayed: response.headers?.['idempotent-replayed'] }).toMatchObject({
            at,
            replayed: { schema: { enum: ['true'] } },
          });
      }
    }
  });

  it('GET operations declare neither 409, 413, 415 nor 422, which they cannot answer', () => {
    for (const { method, path: p, op } of operations().filter((o) => o.method === 'get')) {
      expect({
        at: `${method} ${p}`,
        statuses: Object.keys(op.responses).filter((s) => ['409', '413', '415', '422'].includes(s)),
      }).toEqual({ at: `${method} ${p}`, statuses: [] });
    }
  });

  it('every operation has a unique operationId and declared tags; servers and security: [] are declared', () => {
    const ids = operations().map((o) => o.op.operationId);
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const declared = new Set(doc.tags.map((tag: { name: string }) => tag.name));
    for (const { op } of operations()) expect(op.tags?.every((tag) => declared.has(tag))).toBe(true);
    expect(doc.servers).toEqual([{ url: '/', description: expect.any(String) }]);
    expect(doc.security).toEqual([]);
  });

  it('cursors are integers (after, limit, next); timestamps are date-time, ids uuid', () => {
    for (const p of ['/events', '/products/{sku}/events', '/reservations/{id}/events']) {
      const query = doc.paths[p].get.parameters.filter((x: { in: string }) => x.in === 'query');
      expect(query.map((x: { name: string; schema: { type: string } }) => [x.name, x.schema.type])).toEqual([
        ['after', 'integer'],
        ['limit', 'integer'],
      ]);
    }
    expect(doc.components.schemas.EventPage.properties.next.anyOf).toEqual([
      expect.objectContaining({ type: 'integer' }),
      { type: 'null' },
    ]);
    expect(doc.components.schemas.Reservation.properties.expiresAt.format).toBe('date-time');
    expect(doc.components.schemas.Reservation.properties.id.format).toBe('uuid');
  });

  it('GET /events/stream is text/event-stream (a string), resumes by after or Last-Event-ID, filters by sku', () => {
    const stream = doc.paths['/events/stream'].get;
    expect(stream.operationId).toBe('streamEvents');
    expect(stream.responses['200'].content).toEqual({ 'text/event-stream': { schema: { type: 'string' } } });
    expect(stream.responses['503'].headers['retry-after'].required).toBe(true);
    const parameters = stream.parameters.map((x: { in: string; name: string; schema: { type: string } }) => [
      x.in,
      x.name,
      x.schema.type,
    ]);
    expect(parameters).toEqual([
      ['query', 'after', 'integer'],
      ['query', 'sku', 'string'],
      ['header', 'last-event-id', 'string'],
    ]);
  });
});
