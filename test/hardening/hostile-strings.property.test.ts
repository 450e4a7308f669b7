import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDatabase } from '../../src/audit/verify-database.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { hostileText, percentEncoded, storesAsIs, wtf8 } from './hostile-text.ts';
import { sendRaw, type RawRequest } from './raw-http.ts';

// Every string field of every mutating route, and the parameters of the reads, filled with text
// of any code units: lone surrogates, U+0000, control characters, characters outside the BMP.
// Whatever arrives, the answer is 2xx or 4xx, never 5xx; no text PostgreSQL would store
// differently is accepted; and afterwards the database passes `secventory verify`.
//
// Requests go over a bare socket, so headers carry any byte but CR and LF (which end a header
// line in HTTP/1.1 and cannot be carried): Idempotency-Key and x-request-id get the WTF-8 bytes of
// the text, U+0000 and lone surrogates included. Bodies are JSON as JSON.stringify writes it
// (U+0000 and lone surrogates as \u escapes) or, half the time, the text's bytes written raw
// inside the JSON strings.
//
// PROPERTY_RUNS sets the number of requests (`npm run fuzz:strings` sends 20,000);
// PROPERTY_SEED and PROPERTY_PATH replay a failing run (fast-check prints both).

const numRuns = Number(process.env.PROPERTY_RUNS ?? 1000);
const seed = process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED);
const path = process.env.PROPERTY_PATH;
const fixtures = ['HS-A', 'HS-B'] as const;

let t: TestApp;
/** Reservations the run created, for purchase and cancel to name. */
const reservationIds: string[] = [];

beforeAll(async () => {
  t = await startTestApp();
  for (const sku of fixtures) await t.http('POST', '/products', { body: { sku, name: sku, stock: 1_000_000 } });
});
afterAll(async () => {
  await t?.close();
});

type Encoding = 'json' | 'raw';

interface Probe {
  readonly kind: string;
  readonly request: RawRequest;
  /** The body's text fields as sent, when the body is JSON.stringify's. */
  readonly texts: Record<string, string>;
  readonly [fc.toStringMethod]: () => string;
}

/** A field: usually hostile, sometimes valid, so the hostile field is often all that is wrong. */
const field = (valid: fc.Arbitrary<string>) =>
  fc.oneof({ weight: 3, arbitrary: valid }, { weight: 2, arbitrary: hostileText });
const plainText = fc.string({ minLength: 1, maxLength: 20 });
const key = field(fc.uuid());
const headerFields = fc.record({
  key: fc.option(key, { nil: undefined, freq: 10 }),
  requestId: fc.option(field(fc.uuid()), { nil: undefined }),
});
const encoding = fc.constantFrom<Encoding>('json', 'raw');

/** A JSON object with the text fields' bytes written as they are, only `"` and `\` escaped. */
function rawJson(body: Record<string, string | number>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(body)) {
    const encoded =
      typeof value === 'number' ? Buffer.from(String(value)) : wtf8(`"${value.replace(/["\\]/g, '\\$&')}"`);
    parts.push(Buffer.from(`${parts.length === 0 ? '' : ','}"${name}":`), encoded);
  }
  return Buffer.concat([Buffer.from('{'), ...parts, Buffer.from('}')]);
}

function post(
  kind: string,
  target: string,
  h: { key?: string; requestId?: string },
  body: Record<string, string | number> | null,
  how: Encoding,
): Probe {
  const headers: [string, Buffer][] = [];
  if (h.key !== undefined) headers.push(['idempotency-key', wtf8(h.key)]);
  if (h.requestId !== undefined) headers.push(['x-request-id', wtf8(h.requestId)]);
  // What fast-check prints for a failing request: the strings as JSON escapes, not as bytes.
  const shown = `POST ${target} ${JSON.stringify({ ...h, body, how })}`;
  if (body === null)
    return { kind, request: { method: 'POST', target, headers }, texts: {}, [fc.toStringMethod]: () => shown };
  headers.push(['content-type', Buffer.from('application/json')]);
  const bytes = how === 'json' ? Buffer.from(JSON.stringify(body)) : rawJson(body);
  const texts =
    how === 'json'
      ? Object.fromEntries(Object.entries(body).filter((e): e is [string, string] => typeof e[1] === 'string'))
      : {};
  return { kind, request: { method: 'POST', target, headers, body: bytes }, texts, [fc.toStringMethod]: () => shown };
}

const fixtureSku = field(fc.constantFrom(...fixtures));
const newSku = field(fc.integer({ min: 0, max: 29 }).map((n) => `HS-N${n}`));
const reservationId = field(fc.nat().map((n) => `known:${n}`));
/** `known:n` names the n-th reservation the run created, looked up when the request is sent. */
const resolveId = (id: string) =>
  id.startsWith('known:') && reservationIds.length > 0
    ? reservationIds[Number(id.slice(6)) % reservationIds.length]!
    : id;

const createProduct = fc
  .record({
    sku: newSku,
    name: field(plainText),
    stock: fc.integer({ min: 0, max: 1000 }),
    h: headerFields,
    how: encoding,
  })
  .map(({ sku, name, stock, h, how }) => post('create', '/products', h, { sku, name, stock }, how));
const adjust = fc
  .record({
    sku: fixtureSku,
    delta: fc.integer({ min: -3, max: 5 }).filter((d) => d !== 0),
    reason: field(plainText),
    h: headerFields,
    how: encoding,
  })
  .map(({ sku, delta, reason, h, how }) =>
    post('adjust', `/products/${percentEncoded(sku)}/stock-adjustments`, h, { delta, reason }, how),
  );
const reserve = fc
  .record({ sku: fixtureSku, quantity: fc.integer({ min: 1, max: 3 }), h: headerFields, how: encoding })
  .map(({ sku, quantity, h, how }) =>
    post('reserve', `/products/${percentEncoded(sku)}/reservations`, h, { quantity }, how),
  );
const endReservation = fc
  .record({ action: fc.constantFrom('purchase', 'cancel'), id: reservationId, h: headerFields })
  .map(({ action, id, h }) => ({ action, id, h }));
const read = fc
  .record({ shape: fc.nat({ max: 7 }), a: hostileText, b: field(fc.constantFrom('1', '10')) })
  .map(({ shape, a, b }): Probe => {
    const x = percentEncoded(a);
    const targets = [
      `/products/${x}`,
      `/products/${x}/inventory`,
      `/products/HS-A/events?after=${x}&limit=${percentEncoded(b)}`,
      `/events?after=${x}`,
      `/events?sku=${x}`,
      `/reservations/${x}`,
      `/reservations/${x}/events?limit=${percentEncoded(b)}`,
      `/actors?limit=${x}`,
    ];
    const target = targets[shape]!;
    return {
      kind: 'read',
      request: { method: 'GET', target, headers: [] },
      texts: {},
      [fc.toStringMethod]: () => `GET ${target}`,
    };
  });

const probe = fc.oneof(
  createProduct,
  adjust,
  reserve,
  read,
  endReservation.map(({ action, id, h }) => ({ kind: action, deferredId: id, h })),
);

/** purchase and cancel name a reservation only known when the request is sent. */
function materialize(p: Probe | { kind: string; deferredId: string; h: { key?: string; requestId?: string } }): Probe {
  if (!('deferredId' in p)) return p;
  return post(p.kind, `/reservations/${percentEncoded(resolveId(p.deferredId))}/${p.kind}`, p.h, null, 'json');
}

describe('hostile strings', () => {
  it(
    `${numRuns} requests with text of any code units: never a 5xx, nothing unstorable accepted, verify stays clean`,
    async () => {
      const statuses = new Map<string, number>();
      const startedMs = performance.now();
      await fc.assert(
        fc.asyncProperty(probe, async (drawn) => {
          const p = materialize(drawn);
          const res = await sendRaw(t.baseUrl, p.request);
          // Node's HTTP parser answers a header with NUL or another control byte itself, before the
          // service sees the request (Fastify's plain JSON 400, not problem+json): counted apart.
          const byParser = res.status === 400 && res.body.includes('not valid HTTP');
          const byText = res.status === 400 && res.body.includes('must match format \\"text\\"');
          const tally = `${p.kind} ${res.status}${byParser ? ' (HTTP parser)' : ''}${byText ? ' (Text)' : ''}`;
          statuses.set(tally, (statuses.get(tally) ?? 0) + 1);
          const seen = {
            kind: p.kind,
            target: p.request.target,
            status: res.status,
            body: res.status >= 500 || res.status < 200 ? res.body : '',
          };
          expect(seen.status, JSON.stringify(seen)).toBeGreaterThanOrEqual(200);
          expect(seen.status, JSON.stringify(seen)).toBeLessThan(500);
          if (res.status >= 300) return;
          // Accepted: every text it carried is stored exactly as sent.
          for (const [name, text] of Object.entries(p.texts))
            expect({ name, storable: storesAsIs(text) }).toEqual({ name, storable: true });
          const json = JSON.parse(res.body);
          if (p.kind === 'reserve') reservationIds.push(json.id);
          if (p.kind === 'create' && p.texts.name !== undefined) expect(json.name).toBe(p.texts.name);
        }),
        { numRuns, seed, path, endOnFailure: true },
      );

      const report = await verifyDatabase(t.db.url);
      const seconds = (performance.now() - startedMs) / 1000;
      const figures = [...statuses]
        .sort()
        .map(([k, n]) => `${k}: ${n}`)
        .join(', ');
      console.info(
        `hostile strings: ${numRuns} requests in ${seconds.toFixed(1)} s; ${figures}; ` +
          `verify: ${report.ok ? 'ok' : 'FAILED'} (${report.products} products, ${report.events} events, ${report.reservations} reservations)`,
      );
      expect(report.violations).toEqual([]);
      expect(report.ok).toBe(true);
    },
    60_000 + numRuns * 100,
  );
});
