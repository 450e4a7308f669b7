import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { eventStreamBufferBytes, eventStreamPageLimit, shutdownMsMax } from '../../src/engine/limits.ts';
import { freePort } from '../../src/persistence/embedded-postgres.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { CuttableProxy } from '../support/cuttable-proxy.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';
import { openRawStream, StreamFollower, type RawStream } from '../support/event-stream-client.ts';
import { PrometheusSamples } from '../support/prometheus.ts';

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

const rawStreams: RawStream[] = [];
afterEach(() => {
  for (const r of rawStreams.splice(0)) r.close();
});

async function openRaw(url: string, headers: Record<string, string> = {}): Promise<RawStream> {
  const raw = await openRawStream(url, headers);
  rawStreams.push(raw);
  return raw;
}

async function metrics(t: TestApp): Promise<PrometheusSamples> {
  return new PrometheusSamples((await t.http<string>('GET', '/metrics')).body);
}

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
        expect(
          (await t.http('POST', `/products/${sku}/reservations`, { key, body: { quantity: 999_999 } })).status,
        ).toBe(409);
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
  it('cut off twice under a mixed load, an EventSource resumes: exactly the events of GET /events', async () => {
    const t = await app();
    const skus = ['SSE-A', 'SSE-B', 'SSE-C'];
    await products(t, skus);
    const proxy = await CuttableProxy.start(t.baseUrl);
    closers.push(() => proxy.close());
    const follower = follow(`${proxy.url}/events/stream`);

    const load = mixedLoad(t, skus, 320);
    // Awaited below; a failure before then must not be reported as unhandled.
    load.catch(() => {});
    await waitUntil(() => follower.received.length >= 60, 20_000, 'the first events streamed');
    proxy.cut();
    const beforeSecondCut = follower.received.length + 100;
    await waitUntil(() => follower.received.length >= beforeSecondCut, 20_000, 'events after the first cut');
    proxy.cut();
    await load;
    // The follower may have had every event before the second cut: wait for it to reconnect by
    // itself, so that what it holds afterwards is checked across that reconnection too.
    await waitUntil(() => follower.opens >= 3, 20_000, 'the reconnection after the second cut');

    const log = await expectSameAsLog(t, follower);
    console.info(`event stream: ${log.length} events, ${follower.opens} connections, ${proxy.cuts} cuts`);
    expect(proxy.cuts).toBe(2);
    expect(follower.opens).toBeGreaterThanOrEqual(3);
  });

  it('across a restart of the service over the same database, the client resumes where it was', async () => {
    const db: TestDatabase = await createTestDatabase();
    closers.push(() => db.drop());
    const port = String(await freePort());
    const first = await startTestApp({ db, env: { PORT: port } });
    const skus = ['RESTART-A', 'RESTART-B'];
    await products(first, skus);
    const follower = follow(`${first.baseUrl}/events/stream`);
    await mixedLoad(first, skus, 80);
    const beforeRestart = (await allEvents(first)).length;
    await waitUntil(() => follower.received.length >= beforeRestart, 20_000, 'the events before the restart');
    await first.close();

    const second = await app({ db, env: { PORT: port } });
    await mixedLoad(second, skus, 80);
    await expectSameAsLog(second, follower);
    expect(follower.opens).toBeGreaterThanOrEqual(2);
  });
});

describe('GET /events/stream: the database unreachable', () => {
  it('a stream stays open through a database outage; a client refused meanwhile resumes later', async () => {
    const db = await createTestDatabase();
    closers.push(() => db.drop());
    const databaseProxy = await CuttableProxy.start(db.url);
    closers.push(() => databaseProxy.close());
    const proxiedUrl = new URL(db.url);
    proxiedUrl.port = String(databaseProxy.port);
    const t = await app({
      db: { ...db, url: proxiedUrl.toString() },
      env: {
        SECVENTORY_CONNECTION_TIMEOUT_MS: '500',
        SECVENTORY_STATEMENT_TIMEOUT_MS: '1000',
        SECVENTORY_QUERY_TIMEOUT_MS: '1500',
      },
    });
    const httpProxy = await CuttableProxy.start(t.baseUrl);
    closers.push(() => httpProxy.close());
    const skus = ['OUTAGE-1', 'OUTAGE-2'];
    await products(t, skus);
    await mixedLoad(t, skus, 40);
    const staying = follow(`${t.baseUrl}/events/stream`);
    const refused = follow(`${httpProxy.url}/events/stream`);
    const before = (await allEvents(t)).length;
    await waitUntil(
      () => staying.received.length === before && refused.received.length === before,
      20_000,
      'caught up',
    );

    databaseProxy.down();
    // This client's connection drops too; it reconnects while the database is unreachable.
    httpProxy.cut();
    await waitUntil(() => refused.readyState === 2, 20_000, 'the reconnection refused (EventSource gives up on a 503)');
    expect(refused.errors.join()).toContain('503');
    const meanwhile = await t.http('GET', '/events/stream');
    expect({ status: meanwhile.status, code: meanwhile.body.code }).toEqual({
      status: 503,
      code: 'storage_unavailable',
    });

    databaseProxy.up();
    await waitUntil(async () => (await t.http('GET', '/health/ready')).status === 200, 20_000, 'the database back');
    await mixedLoad(t, skus, 40);
    const resumed = follow(`${t.baseUrl}/events/stream`, refused.lastId);
    const log = await expectSameAsLog(t, staying);
    await waitUntil(() => refused.received.length + resumed.received.length >= log.length, 20_000, 'resumed');
    expect([...refused.positions(), ...resumed.positions()]).toEqual(log.map((e) => e.position));
  });
});

describe('GET /events/stream: what a client asks for', () => {
  it("?sku= streams one product's events with global positions, resumable from any position", async () => {
    const t = await app();
    const skus = ['ONLY-1', 'OTHER-2', 'OTHER-3'];
    await products(t, skus);
    await mixedLoad(t, skus, 60);
    const middle = (await allEvents(t))[40].position;
    const follower = follow(`${t.baseUrl}/events/stream?sku=ONLY-1`);
    const resumed = follow(`${t.baseUrl}/events/stream?sku=ONLY-1`, String(middle));
    await mixedLoad(t, skus, 60);

    const log = await allEvents(t);
    const mine = log.filter((e) => e.sku === 'ONLY-1');
    await waitUntil(() => follower.received.length >= mine.length, 20_000, `${mine.length} ONLY-1 events`);
    expect(follower.received.map((r) => r.event)).toEqual(mine);
    const mineAfterMiddle = log
      .slice(log.findIndex((e) => e.position === middle) + 1)
      .filter((e) => e.sku === 'ONLY-1');
    await waitUntil(() => resumed.received.length >= mineAfterMiddle.length, 20_000, 'ONLY-1 events after a position');
    expect(resumed.received.map((r) => r.event)).toEqual(mineAfterMiddle);
  });

  it('Last-Event-ID wins over ?after=, and ?after= alone resumes after that position', async () => {
    const t = await app();
    await products(t, ['AFTER-1']);
    await mixedLoad(t, ['AFTER-1'], 20);
    const log = await allEvents(t);
    const [fifth, tenth] = [log[4].position, log[9].position];
    const byHeader = follow(`${t.baseUrl}/events/stream?after=${fifth}`, String(tenth));
    const byQuery = follow(`${t.baseUrl}/events/stream?after=${fifth}`);
    await waitUntil(() => byHeader.received.length >= log.length - 10, 20_000, 'the events after the header');
    await waitUntil(() => byQuery.received.length >= log.length - 5, 20_000, 'the events after the query');
    expect(byHeader.positions()).toEqual(log.slice(10).map((e) => e.position));
    expect(byQuery.positions()).toEqual(log.slice(5).map((e) => e.position));
  });

  it('bad or unknown positions and SKUs are 400 problem+json before any stream; no slot is kept', async () => {
    const t = await app();
    await products(t, ['BAD-1']);
    const refused = [
      await t.http('GET', '/events/stream', { headers: { 'last-event-id': 'abc' } }),
      await t.http('GET', '/events/stream', { headers: { 'last-event-id': '12345678901234567' } }),
      await t.http('GET', '/events/stream', { headers: { 'last-event-id': '9007199254740992' } }),
      await t.http('GET', '/events/stream', { headers: { 'last-event-id': '424242' } }),
      await t.http('GET', '/events/stream?after=424242'),
      await t.http('GET', '/events/stream?after=-1'),
      await t.http('GET', '/events/stream?after=1e3'),
      await t.http('GET', '/events/stream?sku=no%20spaces'),
      await t.http('GET', '/events/stream?limit=10'),
    ];
    for (const r of refused) {
      expect(r.status).toBe(400);
      expect(r.headers['content-type']).toContain('application/problem+json');
      expect(r.body.code).toBe('validation_failed');
    }
    expect(refused[3]!.body.detail).toContain('no event has position 424242');
    expect((await metrics(t)).value('secventory_event_streams_open')).toBe(0);
  });

  it('a quiet stream sends `retry:` at once, then `: keep-alive` after each heartbeat interval', async () => {
    const t = await app({ env: { SECVENTORY_EVENT_STREAM_HEARTBEAT_MS: '200' } });
    const raw = await openRaw(`${t.baseUrl}/events/stream`);
    expect(raw.status).toBe(200);
    expect(raw.headers['content-type']).toContain('text/event-stream');
    expect(raw.headers['x-request-id']).toBeDefined();
    await waitUntil(() => raw.text().split(': keep-alive\n\n').length - 1 >= 3, 5_000, 'three heartbeats');
    expect(raw.text().startsWith('retry: 1000\n\n: keep-alive\n\n')).toBe(true);
  });

  it('past SECVENTORY_EVENT_STREAMS_MAX streams, a new one is 503 with Retry-After; closing frees one', async () => {
    const t = await app({ env: { SECVENTORY_EVENT_STREAMS_MAX: '2' } });
    const first = await openRaw(`${t.baseUrl}/events/stream`);
    await openRaw(`${t.baseUrl}/events/stream`);
    expect((await metrics(t)).value('secventory_event_streams_open')).toBe(2);
    const refused = await t.http('GET', '/events/stream');
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.body.code).toBe('overloaded');

    first.close();
    await waitUntil(async () => (await metrics(t)).value('secventory_event_streams_open') === 1, 5_000, 'a slot freed');
    expect((await openRaw(`${t.baseUrl}/events/stream`)).status).toBe(200);
  });
});

/** Opens a stream on a bare socket that never reads what the server sends. */
function stalledStream(baseUrl: string): Promise<net.Socket> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      socket.write(`GET /events/stream HTTP/1.1\r\nhost: ${hostname}\r\n\r\n`);
      socket.pause();
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

describe('GET /events/stream: bounded', () => {
  it('a client that stops reading costs one page and a few kilobytes, however many events follow', async () => {
    const t = await app();
    // The kernel's socket buffers take a few megabytes from a client that does not read, so the
    // events must be many more bytes than that: a 200-character reason, a 240-character
    // Idempotency-Key and a 110-character x-request-id make each event about 900 bytes.
    const skus = Array.from({ length: 8 }, (_, i) => `SLOW-${i}`);
    await products(t, skus);
    const stalled = await stalledStream(t.baseUrl);
    closers.push(async () => void stalled.destroy());
    const reading = follow(`${t.baseUrl}/events/stream`);

    // Rounds of adjustments until the stalled stream is unsentBehindMin events behind the log:
    // the kernel has taken all it takes, and the rest waits in the log, not in the service. A
    // stream that ignored backpressure would never fall behind, and the loop would fail.
    const concurrency = 500;
    const roundsMax = 40;
    const unsentBehindMin = 1_000;
    const adjust = (i: number) =>
      t.http('POST', `/products/${skus[i % skus.length]}/stock-adjustments`, {
        key: `${'k'.repeat(240)}-${i}`,
        headers: { 'x-request-id': `${'r'.repeat(110)}-${i}` },
        body: { delta: 1, reason: 'd'.repeat(200) },
      });
    let bufferedBytesMax = 0;
    let behind = 0;
    for (let round = 0; behind < unsentBehindMin; round++) {
      expect(round, `the stalled stream is not ${unsentBehindMin} events behind`).toBeLessThan(roundsMax);
      const answers = await Promise.all(Array.from({ length: concurrency }, (_, k) => adjust(round * concurrency + k)));
      for (const answer of answers) expect(answer.status).toBe(200);
      // Both streams are followed; the reading one keeps up, so the lag is the stalled one's.
      await waitUntil(() => reading.received.length >= (round + 1) * concurrency, 20_000, 'the reader keeps up');
      const m = await metrics(t);
      bufferedBytesMax = Math.max(bufferedBytesMax, m.value('secventory_event_stream_buffered_bytes'));
      behind = m.value('secventory_event_stream_lag_positions');
    }
    const total = (await allEvents(t)).length;
    await waitUntil(() => reading.received.length >= total, 30_000, 'the reading client has every event');
    bufferedBytesMax = Math.max(bufferedBytesMax, (await metrics(t)).value('secventory_event_stream_buffered_bytes'));
    console.info(
      `stalled stream: ${total} events committed, the stalled stream ${behind} behind, ` +
        `buffered at most ${bufferedBytesMax} bytes`,
    );
    // Node's buffers: the stream's own, the socket's, and one page beyond them (an event's message
    // is at most about 1.5 KB: a 255-character key, a 128-character request id, a 200-character reason).
    const pageBytesMax = eventStreamPageLimit * 2048;
    expect(bufferedBytesMax).toBeLessThanOrEqual(2 * eventStreamBufferBytes + pageBytesMax);

    // Shutdown with both streams open (one stalled) stays within its bound.
    const startedMs = performance.now();
    await t.app.stop();
    const stopMs = performance.now() - startedMs;
    console.info(`shutdown with 2 open streams (1 stalled): ${Math.round(stopMs)} ms`);
    expect(stopMs).toBeLessThan(shutdownMsMax);
  });
});
