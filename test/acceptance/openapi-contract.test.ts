import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { OpenApiContract, type ObservedResponse } from '../support/openapi-contract.ts';

// The check that test/support/app.ts runs on every answer of every test server: it must see
// each way an answer can break the document, or a green suite would prove nothing.

let t: TestApp;
let contract: OpenApiContract;

const product = JSON.stringify({
  sku: 'C-1',
  name: 'c',
  createdAt: '2026-01-31T12:00:00.000Z',
  inventory: { sku: 'C-1', total: 1, reserved: 0, purchased: 0, available: 1, activeReservations: 0, version: 1 },
});
const problem = JSON.stringify({
  type: 'https://secventory.dev/problems/product-not-found',
  title: 'No such product',
  status: 404,
  code: 'product_not_found',
  detail: 'no product C-2',
});

/** A GET /products/{sku} answer that keeps the contract, changed by `change`. */
function answer(change: Partial<ObservedResponse> = {}): ObservedResponse {
  return {
    method: 'GET',
    route: '/products/:sku',
    url: '/products/C-1',
    status: 200,
    headers: { 'x-request-id': 'req-1', 'content-type': 'application/json; charset=utf-8' },
    body: product,
    ...change,
  };
}

beforeAll(async () => {
  t = await startTestApp();
  contract = new OpenApiContract((await t.http('GET', '/openapi.json')).body);
});

afterAll(async () => {
  await t?.close();
});

describe('the answer check', () => {
  it('passes an answer that keeps the document, a problem included', () => {
    expect(contract.check(answer())).toEqual([]);
    const notFound = answer({
      status: 404,
      body: problem,
      headers: { 'x-request-id': 'r', 'content-type': 'application/problem+json' },
    });
    expect(contract.check(notFound)).toEqual([]);
  });

  it('passes an event stream (its body is a stream, not kept) and refuses one sent as another media type', () => {
    const stream = answer({
      route: '/events/stream',
      url: '/events/stream?after=5',
      headers: { 'x-request-id': 'req-1', 'content-type': 'text/event-stream' },
      body: undefined,
    });
    expect(contract.check(stream)).toEqual([]);
    const asJson = { ...stream, headers: { ...stream.headers, 'content-type': 'application/json' } };
    expect(contract.check(asJson).join()).toContain('media type application/json is not one of text/event-stream');
  });

  it('refuses a status the operation does not declare', () => {
    expect(contract.check(answer({ status: 409 })).join()).toContain('status not declared');
  });

  it('refuses a problem sent as application/json', () => {
    const wrongType = answer({
      status: 404,
      body: problem,
      headers: { 'x-request-id': 'r', 'content-type': 'application/json' },
    });
    expect(contract.check(wrongType).join()).toContain('media type application/json');
  });

  it('refuses a body that does not fit its schema, and a problem code that is not documented', () => {
    expect(contract.check(answer({ body: JSON.stringify({ sku: 'C-1' }) })).join()).toContain(
      "must have required property 'name'",
    );
    const unknownCode = problem.replace('product_not_found', 'no_such_code');
    expect(
      contract
        .check(
          answer({
            status: 404,
            body: unknownCode,
            headers: { 'x-request-id': 'r', 'content-type': 'application/problem+json' },
          }),
        )
        .join(),
    ).toContain('/code must be equal to one of the allowed values');
  });

  it('refuses a missing x-request-id, and an idempotent-replayed header where none is declared', () => {
    expect(contract.check(answer({ headers: { 'content-type': 'application/json' } })).join()).toContain(
      'required header x-request-id is missing',
    );
    const replayed = answer({
      headers: { 'x-request-id': 'r', 'content-type': 'application/json', 'idempotent-replayed': 'true' },
    });
    expect(contract.check(replayed).join()).toContain('header idempotent-replayed is not declared');
  });

  it('refuses an answer to an unknown route that is not a problem', () => {
    const unrouted = answer({
      route: undefined,
      url: '/nope',
      status: 404,
      body: 'not found',
      headers: { 'x-request-id': 'r', 'content-type': 'text/plain' },
    });
    expect(contract.check(unrouted).join()).toContain('no operation in the document');
  });
});
