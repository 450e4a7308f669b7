import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { CuttableProxy } from '../support/cuttable-proxy.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';
import { StreamFollower } from '../support/event-stream-client.ts';

// GET /events/stream followed by a real EventSource client: whatever happens to the connection or
// the service, a client that reconnects with the id of the last message it received ends up with
// exactly the events of GET /events, in the same order, none missing, none twice.

const followers: StreamFollower[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(() => {
  for (const f of followers.splice(0)) f.close();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

function follow(url: string, lastEventId?: string): StreamFollower {
  const follower = new StreamFollower(url, { lastEventId });
  followers.push(follower);
  return follower;
}

async function app(options: Parameters<typeof startTestApp>[0] = {}): Promise<TestApp> {
  const t = await startTestApp(options);
  closers.push(() => t.close());
  return t;
}

/** Every event of GET /events, page by page. */
async function allEvents(t: TestApp): Promise<any[]> {
  const events: any[] = [];
  let after = 0;
  for (;;) {
    const page = await t.http('GET', `/events?after=${after}&limit=1000`);
    expect(page.status).toBe(200);
    events.push(...page.body.events);
    if (page.body.next === null) return events;
    after = page.body.next;
  }
}

let keySeq = 0;

/**
 * `operations` operations over `skus`, `concurrency` at a time: reservations, then purchases or
 * cancels of them, stock adjustments, and reservations refused for want of stock.
 */
async function mixedLoad(t: TestApp, skus: readonly string[], operations: number, concurrency = 16): Promise<void> {
  const one = async (i: number) => {
    const sku = skus[i % skus.length]!;
    const key = `load-${++keySeq}`;
    switch (i % 4) {
      case 0:
      case 1: {
        const reserved = await t.http('POST', `/products/${sku}/reservations`, { key, body: { quantity: 1 } });
        expect(reserved.status).toBe(201);
        const end = i % 4 === 0 ? 'purchase' : 'cancel';
        expect((await t.http('POST', `/reservations/${reserved.body.id}/${end}`)).status).toBe(200);
        return;
      }
      case 2:
        expect(
          (await t.http('POST', `/products/${sku}/stock-adjustments`, { key, body: { delta: 2, reason: 'delivery' } }))
            .status,
        ).toBe(200);
        return;
      default:
        expect((await t.http('POST', `/products/${sku}/reservations`, { key, body: { quantity: 999_999 } })).status).toBe(
          409,
        );
    }
  };
  for (let i = 0; i < operations; i += concurrency) {
    await Promise.all(Array.from({ length: Math.min(concurrency, operations - i) }, (_, k) => one(i + k)));
  }
}

async function products(t: TestApp, skus: readonly string[], stock = 10_000): Promise<void> {
  for (const sku of skus) {
    expect((await t.http('POST', '/products', { body: { sku, name: sku, stock } })).status).toBe(201);
  }
}

/** Waits until the follower has as many events as GET /events, then compares them one by one. */
async function expectSameAsLog(t: TestApp, follower: StreamFollower): Promise<any[]> {
  const log = await allEvents(t);
  await waitUntil(() => follower.received.length >= log.length, 20_000, `${log.length} events streamed`);
  expect(follower.positions()).toEqual(log.map((e) => e.position));
  expect(follower.received.map((r) => r.event)).toEqual(log);
  expect(follower.received.map((r) => [r.id, r.name])).toEqual(log.map((e) => [String(e.position), e.type]));
  return log;
}

describe('GET /events/stream: resumable', () => {
  it('a client cut off twice during a mixed load reconnects with Last-Event-ID and ends with exactly the events of GET /events', async () => {
    const t = await app();
    const skus = ['SSE-A', 'SSE-B', 'SSE-C'];
    await products(t, skus);
    const proxy = await CuttableProxy.start(t.baseUrl);
    closers.push(() => proxy.close());
    const follower = follow(`${proxy.url}/events/stream`);

    const load = mixedLoad(t, skus, 480);
    // Awaited below; a failure before then must not be reported as unhandled.
    load.catch(() => {});
    await waitUntil(() => follower.received.length >= 60, 20_000, 'the first events streamed');
    proxy.cut();
    const beforeSecondCut = follower.received.length + 100;
    await waitUntil(() => follower.received.length >= beforeSecondCut, 20_000, 'events after the first cut');
    proxy.cut();
    await load;

    const log = await expectSameAsLog(t, follower);
    console.info(`event stream: ${log.length} events, ${follower.opens} connections, ${proxy.cuts} cuts`);
    expect(proxy.cuts).toBe(2);
    expect(follower.opens).toBeGreaterThanOrEqual(3);
  });

  it('a client reconnecting across a restart of the service (a new process over the same database) resumes where it was', async () => {
    const db: TestDatabase = await createTestDatabase();
    closers.push(() => db.drop());
    const port = String(await freePort());
    const first = await startTestApp({ db, env: { PORT: port } });
    const skus = ['RESTART-A', 'RESTART-B'];
    await products(first, skus);
    const follower = follow(`${first.baseUrl}/events/stream`);
    await mixedLoad(first, skus, 120);
    const beforeRestart = (await allEvents(first)).length;
    await waitUntil(() => follower.received.length >= beforeRestart, 20_000, 'the events before the restart');
    await first.close();

    const second = await app({ db, env: { PORT: port } });
    await mixedLoad(second, skus, 120);
    await expectSameAsLog(second, follower);
    expect(follower.opens).toBeGreaterThanOrEqual(2);
  });
});
