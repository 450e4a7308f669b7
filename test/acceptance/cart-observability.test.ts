import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { waitUntil } from '../support/database.ts';
import { PrometheusSamples } from '../support/prometheus.ts';

// What an operator sees of carts (reservations of several products): /metrics counts and times
// every cart operation by operation and outcome, /stats counts them with the commands, and a cart
// operation that was not acknowledged leaves a log line naming its request and key.

let t: TestApp;
let seq = 0;
const key = () => `cart-obs-${++seq}`;
const logLines: Record<string, unknown>[] = [];
/** The 503 of the cart the database refused, for the log test. */
let failedCart: { requestId: string; key: string };

const cart = (lines: [string, number][], options: { key?: string; ttlSeconds?: number } = {}) =>
  t.http('POST', '/reservations', {
    key: options.key ?? key(),
    body: { lines: lines.map(([sku, quantity]) => ({ sku, quantity })), ttlSeconds: options.ttlSeconds ?? 600 },
  });

async function scrape(): Promise<PrometheusSamples> {
  return new PrometheusSamples((await t.http<string>('GET', '/metrics')).body);
}

/** What the load below does, by cart operation and outcome. */
const expected = {
  reserve: { ok: 5, rejected: 2, error: 1 },
  purchase: { ok: 1, rejected: 1, error: 0 },
  cancel: { ok: 1, rejected: 0, error: 0 },
  extend: { ok: 1, rejected: 0, error: 0 },
  expire: { ok: 1, rejected: 0, error: 0 },
};

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  t = await startTestApp({ env: { SECVENTORY_SWEEP_INTERVAL_MS: '100' }, logger: pino({ level: 'info' }, sink) });
  for (const sku of ['OC-A', 'OC-B', 'OC-C', 'OC-FAIL']) {
    expect((await t.http('POST', '/products', { body: { sku, name: sku, stock: 10 } })).status).toBe(201);
  }
  // The database refuses any reservation of OC-FAIL: a storage error in the cart's commit (503).
  await t.db.sql.query(`
    create function refuse_oc_fail() returns trigger language plpgsql as $$
    begin
      if new.sku = 'OC-FAIL' then raise exception 'refused by the test'; end if;
      return new;
    end $$;
    create trigger refuse_oc_fail before insert on reservations for each row execute function refuse_oc_fail()`);

  const firstKey = key();
  const first = await cart(
    [
      ['OC-A', 1],
      ['OC-B', 1],
    ],
    { key: firstKey },
  );
  const second = await cart([
    ['OC-A', 1],
    ['OC-B', 1],
    ['OC-C', 1],
  ]);
  const third = await cart([
    ['OC-B', 1],
    ['OC-C', 1],
  ]);
  const expiring = await cart(
    [
      ['OC-A', 1],
      ['OC-C', 1],
    ],
    { ttlSeconds: 1 },
  );
  const replay = await cart(
    [
      ['OC-A', 1],
      ['OC-B', 1],
    ],
    { key: firstKey },
  );
  expect([first, second, third, expiring, replay].map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
  expect(replay.headers['idempotent-replayed']).toBe('true');
  expect(
    (
      await cart([
        ['OC-A', 1],
        ['OC-C', 100],
      ])
    ).status,
  ).toBe(409);
  expect(
    (
      await cart([
        ['OC-A', 1],
        ['OC-NONE', 1],
      ])
    ).status,
  ).toBe(404);
  const failedKey = key();
  const failed = await cart(
    [
      ['OC-A', 1],
      ['OC-FAIL', 1],
    ],
    { key: failedKey },
  );
  expect([failed.status, failed.body.code]).toEqual([503, 'storage_unavailable']);
  failedCart = { requestId: String(failed.headers['x-request-id']), key: failedKey };

  expect((await t.http('POST', `/reservations/${first.body.id}/purchase`, { key: key() })).status).toBe(200);
  expect((await t.http('POST', `/reservations/${second.body.id}/cancel`, { key: key() })).status).toBe(200);
  expect((await t.http('POST', `/reservations/${second.body.id}/purchase`, { key: key() })).status).toBe(409);
  const extend = { key: key(), body: { ttlSeconds: 3600 } };
  const extended = await t.http('POST', `/reservations/${third.body.id}/extend`, extend);
  expect(extended.status).toBe(200);
  const status = async () => (await t.http('GET', `/reservations/${expiring.body.id}`)).body.status;
  await waitUntil(async () => (await status()) === 'expired', 5_000, 'the sweeper expired the cart');
  // The sweeper's expiry is reported right after its commit, which a reader may see first.
  const expiries = async () =>
    (await scrape()).value('secventory_cart_operations_total', {
      operation: 'expire',
      outcome: 'ok',
    });
  await waitUntil(async () => (await expiries()) === 1, 2_000, "the sweeper's cart expiry was reported");
});

afterAll(async () => {
  await t?.close();
});

describe('/metrics and /stats count cart operations', () => {
  it('secventory_cart_operations_total counts each cart operation once, by operation and outcome', async () => {
    const m = await scrape();
    for (const [operation, outcomes] of Object.entries(expected)) {
      for (const [outcome, count] of Object.entries(outcomes)) {
        const counted = m.value('secventory_cart_operations_total', { operation, outcome });
        expect([operation, outcome, counted]).toEqual([operation, outcome, count]);
      }
    }
  });

  it('a cart is one operation, however many products it holds: no command of its products is counted', async () => {
    const m = await scrape();
    for (const operation of ['reserve', 'purchase', 'cancel', 'expire', 'adjust', 'extend']) {
      for (const outcome of ['ok', 'rejected', 'error']) {
        expect(m.value('secventory_operations_total', { operation, outcome })).toBe(0);
      }
    }
  });

  it('secventory_cart_operation_duration_seconds holds one observation per answered cart operation', async () => {
    const m = await scrape();
    for (const [operation, outcomes] of Object.entries(expected)) {
      const answered = outcomes.ok + outcomes.rejected + outcomes.error;
      expect(m.value('secventory_cart_operation_duration_seconds_count', { operation })).toBe(answered);
      const buckets = m.buckets('secventory_cart_operation_duration_seconds', { operation });
      expect(buckets.at(-1)).toEqual({ le: Number.POSITIVE_INFINITY, count: answered });
    }
    expect(m.value('secventory_cart_operation_duration_seconds_sum', { operation: 'reserve' })).toBeGreaterThan(0);
  });

  it("a cart's commit is timed from sending it to its answer, for each product it wrote", async () => {
    const m = await scrape();
    const commits = m.value('secventory_batch_commit_duration_seconds_count');
    // Carts that wrote: 4 new, 1 refused (audited on both products), purchase, cancel, refused
    // purchase, extend, expiry.
    expect(commits).toBeGreaterThanOrEqual(10);
    // A round trip to PostgreSQL takes far more than the 100 us a commit measured after its answer would show.
    expect(m.value('secventory_batch_commit_duration_seconds_sum') / commits).toBeGreaterThan(0.000_1);
  });

  it('/stats counts cart operations with the commands: totals, rejections and errors', async () => {
    const stats = (await t.http('GET', '/stats')).body;
    const sum = (outcome: 'ok' | 'rejected' | 'error') => Object.values(expected).reduce((n, o) => n + o[outcome], 0);
    const total = sum('ok') + sum('rejected') + sum('error');
    expect(stats.operations).toMatchObject({ total, ok: sum('ok'), rejected: sum('rejected'), errors: sum('error') });
    expect(stats.lastMinute).toMatchObject({ operations: total, rejected: sum('rejected'), errors: sum('error') });
  });
});

describe('the log of cart operations', () => {
  it('a cart operation not acknowledged (503) is logged with its request id, key, SKUs and code', () => {
    const lines = logLines.filter((l) => l.msg === 'cart operation not acknowledged');
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        cart: 'reserve',
        code: 'storage_unavailable',
        inDoubt: true,
        skus: ['OC-A', 'OC-FAIL'],
        requestId: failedCart.requestId,
        idempotencyKey: failedCart.key,
      }),
    ]);
  });
});
