import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { waitUntil } from '../support/database.ts';
import { PrometheusSamples } from '../support/prometheus.ts';

let t: TestApp;
let keySeq = 0;
const key = () => `obs-${++keySeq}`;

async function product(app: TestApp, sku: string, stock: number) {
  expect((await app.http('POST', '/products', { body: { sku, name: sku, stock } })).status).toBe(201);
}

function reserve(app: TestApp, sku: string, quantity = 1, ttlSeconds?: number) {
  return app.http('POST', `/products/${sku}/reservations`, {
    key: key(),
    body: ttlSeconds === undefined ? { quantity } : { quantity, ttlSeconds },
  });
}

async function scrape(app: TestApp): Promise<PrometheusSamples> {
  const res = await app.http<string>('GET', '/metrics');
  expect(res.status).toBe(200);
  expect(String(res.headers['content-type'])).toContain('text/plain');
  return new PrometheusSamples(res.body);
}

function tally(statuses: number[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
  return counts;
}

/**
 * The known load: 50 reserves race for 40 units of a hot product (10 rejected), 15 of the
 * reservations are purchased and 5 cancelled; 3 reserves each on two other products, one stock
 * adjustment, one reservation left to expire, and one reserve on a product that does not exist.
 */
const load = {
  hotSku: 'OBS-HOT',
  hotStock: 40,
  hotReserves: 50,
  purchases: 15,
  cancels: 5,
  otherSkus: ['OBS-A', 'OBS-B'],
  otherReserves: 3,
};
const expected = {
  reserveOk: load.hotStock + load.otherSkus.length * load.otherReserves + 1,
  // 10 lost the race for stock, 1 named a product that does not exist (404, a client error).
  reserveRejected: load.hotReserves - load.hotStock + 1,
  purchaseOk: load.purchases,
  cancelOk: load.cancels,
  adjustOk: 1,
  expireOk: 1,
  activeReservations: load.hotStock - load.purchases - load.cancels + load.otherSkus.length * load.otherReserves,
  // The product that does not exist gets an actor too: it answered the reserve.
  liveActors: 1 + load.otherSkus.length + 1 + 1,
};
const operationsTotal =
  expected.reserveOk +
  expected.reserveRejected +
  expected.purchaseOk +
  expected.cancelOk +
  expected.adjustOk +
  expected.expireOk;

beforeAll(async () => {
  t = await startTestApp();
  await product(t, load.hotSku, load.hotStock);
  for (const sku of load.otherSkus) await product(t, sku, 10);
  await product(t, 'OBS-EXP', 5);

  const hot = await Promise.all(Array.from({ length: load.hotReserves }, () => reserve(t, load.hotSku)));
  expect(tally(hot.map((r) => r.status))).toEqual({ 201: load.hotStock, 409: load.hotReserves - load.hotStock });
  const held = hot.filter((r) => r.status === 201).map((r) => r.body.id as string);
  const purchased = await Promise.all(
    held.slice(0, load.purchases).map((id) => t.http('POST', `/reservations/${id}/purchase`)),
  );
  const cancelled = await Promise.all(
    held.slice(load.purchases, load.purchases + load.cancels).map((id) => t.http('POST', `/reservations/${id}/cancel`)),
  );
  expect([...purchased, ...cancelled].every((r) => r.status === 200)).toBe(true);

  for (const sku of load.otherSkus) {
    const others = await Promise.all(Array.from({ length: load.otherReserves }, () => reserve(t, sku)));
    expect(others.every((r) => r.status === 201)).toBe(true);
  }
  expect(
    (
      await t.http('POST', `/products/${load.otherSkus[0]}/stock-adjustments`, {
        key: key(),
        body: { delta: 5, reason: 'delivery' },
      })
    ).status,
  ).toBe(200);
  expect((await reserve(t, 'OBS-NONE')).status).toBe(404);

  const expiring = await reserve(t, 'OBS-EXP', 1, 1);
  expect(expiring.status).toBe(201);
  await waitUntil(
    async () => (await t.http('GET', `/reservations/${expiring.body.id}`)).body.status === 'expired',
    10_000,
    'the 1 s reservation expired',
  );
  // The reservation turns expired in the sweeper's commit; the sweep reports it right after.
  await waitUntil(
    async () => (await scrape(t)).value('secventory_expiries_total') === 1,
    5_000,
    'the sweep reported its expiry',
  );
});

afterAll(async () => {
  await t?.close();
});

describe('/metrics after a known load', () => {
  it('secventory_operations_total counts every command by operation and outcome, exactly', async () => {
    const m = await scrape(t);
    const ops = (operation: string, outcome: string) => m.value('secventory_operations_total', { operation, outcome });
    expect(ops('reserve', 'ok')).toBe(expected.reserveOk);
    expect(ops('reserve', 'rejected')).toBe(expected.reserveRejected);
    expect(ops('purchase', 'ok')).toBe(expected.purchaseOk);
    expect(ops('cancel', 'ok')).toBe(expected.cancelOk);
    expect(ops('adjust', 'ok')).toBe(expected.adjustOk);
    expect(ops('expire', 'ok')).toBe(expected.expireOk);
    for (const operation of ['reserve', 'purchase', 'cancel', 'expire', 'adjust'])
      expect(ops(operation, 'error')).toBe(0);
    for (const operation of ['purchase', 'cancel', 'expire', 'adjust']) expect(ops(operation, 'rejected')).toBe(0);
  });

  it('latency histograms hold one observation per answered command', async () => {
    const m = await scrape(t);
    const reserves = expected.reserveOk + expected.reserveRejected;
    expect(m.value('secventory_reservation_duration_seconds_count')).toBe(reserves);
    expect(m.buckets('secventory_reservation_duration_seconds').at(-1)).toEqual({
      le: Number.POSITIVE_INFINITY,
      count: reserves,
    });
    const durations = (operation: string) => m.value('secventory_operation_duration_seconds_count', { operation });
    expect(durations('reserve')).toBe(reserves);
    expect(durations('purchase')).toBe(expected.purchaseOk);
    expect(durations('cancel')).toBe(expected.cancelOk);
    expect(durations('adjust')).toBe(expected.adjustOk);
    expect(durations('expire')).toBe(expected.expireOk);
    expect(m.value('secventory_reservation_duration_seconds_sum')).toBeCloseTo(
      m.value('secventory_operation_duration_seconds_sum', { operation: 'reserve' }),
      9,
    );
  });

  it('batch histograms add up to every command that reached a commit (all but the one on a missing product)', async () => {
    const m = await scrape(t);
    expect(m.value('secventory_batch_size_commands_sum')).toBe(operationsTotal - 1);
    const batches = m.value('secventory_batch_size_commands_count');
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batches).toBeLessThanOrEqual(operationsTotal - 1);
    expect(m.value('secventory_batch_commit_duration_seconds_count')).toBe(batches);
  });

  it("commit statements are timed apart from the batches in them: a round trip never exceeds its batches' commits", async () => {
    const m = await scrape(t);
    const batches = m.value('secventory_batch_commit_duration_seconds_count');
    const statements = m.value('secventory_commit_round_trip_seconds_count');
    expect(statements).toBeGreaterThanOrEqual(1);
    expect(statements).toBeLessThanOrEqual(batches);
    expect(m.value('secventory_commit_queue_wait_seconds_count')).toBe(statements);
    // Each statement carries at least one batch, whose commit time contains the statement's round trip.
    expect(m.value('secventory_commit_round_trip_seconds_sum')).toBeLessThanOrEqual(
      m.value('secventory_batch_commit_duration_seconds_sum'),
    );
  });

  it('counts the sweeper expiry, no version conflicts and no storage errors', async () => {
    const m = await scrape(t);
    expect(m.value('secventory_expiries_total')).toBe(1);
    expect(m.value('secventory_version_conflicts_total')).toBe(0);
    expect(m.value('secventory_storage_errors_total')).toBe(0);
  });

  it('secventory_active_reservations equals the database count of active reservations', async () => {
    const { rows } = await t.db.sql.query<{ n: string }>(
      `select count(*) as n from reservations where status = 'active'`,
    );
    expect(Number(rows[0]!.n)).toBe(expected.activeReservations);
    // The gauge may serve a count up to 1 s old; a fresh one must then agree.
    await waitUntil(
      async () => (await scrape(t)).value('secventory_active_reservations') === expected.activeReservations,
      3_000,
      'the gauge matched the database',
    );
  });

  it('gauges show the live actors and empty queues once the load is answered', async () => {
    const m = await scrape(t);
    expect(m.value('secventory_live_actors')).toBe(expected.liveActors);
    expect(m.value('secventory_queue_depth')).toBe(0);
    expect(m.names.has('process_cpu_user_seconds_total')).toBe(true);
    expect(m.names.has('nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('no metric carries a per-SKU label', async () => {
    const text = (await t.http<string>('GET', '/metrics')).body;
    expect(text).not.toMatch(/sku=/);
    expect(text).not.toContain('OBS-');
  });
});

describe('/stats after a known load', () => {
  it('average reservation latency is the histogram sum over its count, and p99 is the bucket that holds the 99th percentile', async () => {
    const [stats, m] = [(await t.http('GET', '/stats')).body, await scrape(t)];
    const count = m.value('secventory_reservation_duration_seconds_count');
    expect(stats.reservations.count).toBe(count);
    const meanMs = (1000 * m.value('secventory_reservation_duration_seconds_sum')) / count;
    expect(stats.reservations.latencyMsMean).toBeGreaterThan(0);
    expect(Math.abs(stats.reservations.latencyMsMean - meanMs)).toBeLessThan(1e-6 * meanMs);

    const buckets = m.buckets('secventory_reservation_duration_seconds');
    const rank = Math.ceil(0.99 * count);
    const p99Bucket = buckets.find((b) => b.count >= rank)!;
    expect(stats.reservations.latencyMsP99).toBeCloseTo(p99Bucket.le * 1000, 9);
  });

  it('failure and rejection rates cover every command, since start and over the last minute', async () => {
    const stats = (await t.http('GET', '/stats')).body;
    expect(stats.operations).toEqual({
      total: operationsTotal,
      ok: operationsTotal - expected.reserveRejected,
      rejected: expected.reserveRejected,
      errors: 0,
      failureRate: 0,
      rejectionRate: expected.reserveRejected / operationsTotal,
    });
    expect(stats.lastMinute).toMatchObject({
      operations: operationsTotal,
      rejected: expected.reserveRejected,
      errors: 0,
      failureRate: 0,
    });
    expect(stats.lastMinute.reservations).toBe(expected.reserveOk + expected.reserveRejected);
    expect(stats.perSecond).toHaveLength(60);
    expect(Date.parse(stats.perSecond.at(-1).at)).toBeLessThanOrEqual(Date.parse(stats.at));
  });

  it('reports active reservations from the database, live actors and queue depths', async () => {
    await waitUntil(
      async () => (await t.http('GET', '/stats')).body.activeReservations === expected.activeReservations,
      3_000,
      '/stats matched the database',
    );
    const stats = (await t.http('GET', '/stats')).body;
    expect(stats).toMatchObject({ liveActors: expected.liveActors, queueDepthTotal: 0, queueDepthMax: 0 });
  });
});

describe('/actors after a known load', () => {
  it('lists the hot product first, with its commands, batches and mean batch size', async () => {
    const res = await t.http('GET', '/actors');
    expect(res.status).toBe(200);
    expect(res.body.liveActors).toBe(expected.liveActors);
    const [first] = res.body.actors;
    expect(first.sku).toBe(load.hotSku);
    expect(first.commands).toBe(load.hotReserves + load.purchases + load.cancels);
    expect(first.batches).toBeGreaterThanOrEqual(1);
    expect(first.meanBatchSize).toBeCloseTo(first.commands / first.batches, 9);
    expect(first.queueDepth).toBe(0);
    expect(first.latencyMsP99).toBeGreaterThan(0);
    expect(Date.parse(first.lastActivity)).not.toBeNaN();
    const commands = res.body.actors.map((a: { commands: number }) => a.commands);
    expect(commands).toEqual([...commands].sort((a, b) => b - a));
  });

  it('returns a bounded page: limit=2 gives two, and limits outside 1..1000 are 400 validation_failed', async () => {
    expect((await t.http('GET', '/actors?limit=2')).body.actors).toHaveLength(2);
    for (const limit of ['0', '1001', 'ten', '-1']) {
      const res = await t.http('GET', `/actors?limit=${limit}`);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
  });
});

describe('operations pages', () => {
  it('/openapi.json describes /stats and /actors with their response schemas', async () => {
    const doc = (await t.http('GET', '/openapi.json')).body;
    for (const [path, name] of [
      ['/stats', 'Stats'],
      ['/actors', 'ActorPage'],
    ] as const) {
      const schema = doc.paths[path].get.responses['200'].content['application/json'].schema;
      expect(schema).toEqual({ $ref: `#/components/schemas/${name}` });
      expect(doc.components.schemas[name].properties).toBeDefined();
    }
    expect(doc.paths['/metrics'].get).toBeDefined();
    expect(doc.paths['/dashboard/uplot.js']).toBeUndefined();
  });

  it('/dashboard is served with uPlot from the app itself, never from a CDN', async () => {
    const page = await t.http<string>('GET', '/dashboard');
    expect(page.status).toBe(200);
    expect(String(page.headers['content-type'])).toContain('text/html');
    expect(page.body).toContain('src="/dashboard/uplot.js"');
    expect(page.body).not.toMatch(/(src|href)="(https?:)?\/\//);
    const js = await t.http<string>('GET', '/dashboard/uplot.js');
    expect(String(js.headers['content-type'])).toContain('javascript');
    expect(js.body).toContain('uPlot');
    const css = await t.http<string>('GET', '/dashboard/uplot.css');
    expect(String(css.headers['content-type'])).toContain('text/css');
    expect(css.body).toContain('.uplot');
  });

  it('every metric the Grafana dashboard queries is one that /metrics exposes', async () => {
    const dashboard = JSON.parse(
      await readFile(new URL('../../ops/grafana/secventory-dashboard.json', import.meta.url), 'utf8'),
    );
    const variables = dashboard.templating.list.map((v: { name: string; type: string }) => `${v.type}:${v.name}`);
    expect(variables).toContain('datasource:datasource');
    const exposed = (await scrape(t)).names;
    const panels = dashboard.panels
      .flatMap((p: any) => [p, ...(p.panels ?? [])])
      .filter((p: any) => p.type !== 'row' && p.type !== 'text');
    expect(panels.length).toBeGreaterThanOrEqual(8);
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      for (const target of panel.targets) {
        const names: string[] = target.expr.match(/\b(secventory|process|nodejs)_[a-z0-9_]+\b/g) ?? [];
        expect(names.length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0);
        for (const name of names) expect(exposed.has(name), `${panel.title} queries ${name}`).toBe(true);
      }
    }
  });
});

describe('errors in the metrics', () => {
  it('commands refused with 503 overloaded count as errors, in the counter and in both failure rates', async () => {
    const small = await startTestApp({ env: { SECVENTORY_MAILBOX_LENGTH_MAX: '2', SECVENTORY_BATCH_SIZE_MAX: '1' } });
    try {
      await product(small, 'OBS-FULL', 1000);
      const answers = await Promise.all(Array.from({ length: 200 }, () => reserve(small, 'OBS-FULL')));
      const statuses = tally(answers.map((r) => r.status));
      expect(Object.keys(statuses).sort()).toEqual(['201', '503']);
      expect(answers.filter((r) => r.status === 503).every((r) => r.body.code === 'overloaded')).toBe(true);

      const m = await scrape(small);
      expect(m.value('secventory_operations_total', { operation: 'reserve', outcome: 'ok' })).toBe(statuses[201]);
      expect(m.value('secventory_operations_total', { operation: 'reserve', outcome: 'error' })).toBe(statuses[503]);
      // A refusal never reached an actor's turn, so it has no latency to observe.
      expect(m.value('secventory_reservation_duration_seconds_count')).toBe(statuses[201]);
      const stats = (await small.http('GET', '/stats')).body;
      expect(stats.operations.failureRate).toBeCloseTo(statuses[503]! / 200, 9);
      expect(stats.lastMinute.failureRate).toBeCloseTo(statuses[503]! / 200, 9);
    } finally {
      await small.close();
    }
  });
});
