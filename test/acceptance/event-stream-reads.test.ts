import http from 'node:http';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { EventStreams } from '../../src/api/event-streams.ts';
import { createPool, type DatabasePool } from '../../src/persistence/database.ts';
import { PgEventLog } from '../../src/persistence/event-log.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { CuttableProxy } from '../support/cuttable-proxy.ts';
import { waitUntil } from '../support/database.ts';

// A stream's reads, driven in this process so that each moment is chosen, not hoped for: the test
// knows where the stream's next page must come from (the shared window or the database) and
// changes the world right then.

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

/** The streams of one instance over `pool`, as the server builds them, and one stream's text. */
function streamsOver(pool: DatabasePool, outages: string[] = []): EventStreams {
  const streams = new EventStreams({
    eventLog: new PgEventLog(pool),
    streamsMax: 1,
    heartbeatMs: 60_000,
    observer: { eventsStreamed: () => {} },
    onStorageError: (error) => outages.push(error.message),
    onRecovered: () => outages.push('recovered'),
    onDefect: (error) => {
      throw error;
    },
  });
  closers.push(() => streams.close());
  return streams;
}

/** Reads a stream as it comes; `positions()` are the ids of the messages read so far. */
function reader(stream: Readable) {
  let text = '';
  stream.setEncoding('utf8');
  const readAll = () => {
    for (let chunk: unknown = stream.read(); chunk !== null; chunk = stream.read()) text += chunk as string;
  };
  return {
    readAll,
    follow: () => stream.on('readable', readAll),
    positions: () => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])),
  };
}

const detachedResponse = () => new http.ServerResponse(new http.IncomingMessage(new net.Socket()));

describe('a stream started at the end of the log', () => {
  it("gets an event committed between its first read and the window's start, with none after", async () => {
    const t: TestApp = await startTestApp();
    closers.push(() => t.close());
    expect((await t.http('POST', '/products', { body: { sku: 'GAP-1', name: 'g', stock: 1 } })).status).toBe(201);
    const streams = streamsOver(t.app.pool);
    const tail = (await t.http('GET', '/events')).body.events.at(-1).position as number;
    expect(streams.reserve()).toBe(true);
    const firstPage = (await streams.firstPage(tail))!;
    expect(firstPage).toEqual([]);
    const adjusted = await t.http('POST', '/products/GAP-1/stock-adjustments', {
      key: 'gap',
      body: { delta: 1, reason: 'r' },
    });
    expect(adjusted.status).toBe(200);
    // The window starts now, after the adjustment: the stream, at `tail`, is before its anchor.
    const stream = streams.open({ position: tail, sku: undefined, firstPage }, detachedResponse());
    const read = reader(stream);
    read.follow();
    read.readAll();
    await waitUntil(() => read.positions().length === 1, 5_000, 'the adjustment streamed');
    const newest = (await t.http('GET', `/events?after=${tail}`)).body.events.map(
      (e: { position: number }) => e.position,
    );
    expect(read.positions()).toEqual(newest);
    stream.destroy();
  });
});

describe('a stream whose read fails while the database is unreachable', () => {
  it('stays open, reads again once the database answers, and writes every event once, in order', async () => {
    const t: TestApp = await startTestApp();
    closers.push(() => t.close());
    expect((await t.http('POST', '/products', { body: { sku: 'OUT-1', name: 'o', stock: 1 } })).status).toBe(201);
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        t.http('POST', '/products/OUT-1/stock-adjustments', { key: `out-${i}`, body: { delta: 1, reason: 'r' } }),
      ),
    );
    const log = (await t.http('GET', '/events?limit=1000')).body.events.map((e: { position: number }) => e.position);

    const databaseProxy = await CuttableProxy.start(t.db.url);
    closers.push(() => databaseProxy.close());
    const proxied = new URL(t.db.url);
    proxied.port = String(databaseProxy.port);
    const pool = createPool(
      {
        connectionString: proxied.toString(),
        poolSize: 2,
        connectionAcquireTimeoutMs: 500,
        statementTimeoutMs: 1_000,
        queryTimeoutMs: 1_500,
        idleInTransactionTimeoutMs: 1_000,
      },
      () => {},
    );
    closers.push(() => pool.end());
    const outages: string[] = [];
    const streams = streamsOver(pool, outages);

    expect(streams.reserve()).toBe(true);
    const firstPage = (await streams.firstPage(0))!;
    const stream = streams.open({ position: 0, sku: undefined, firstPage }, detachedResponse());
    // The shared window starts at the end of the log: every later page of this stream is the database's.
    await waitUntil(() => streams.feed.newestPosition === log.at(-1), 5_000, 'the window anchored at the end');

    const read = reader(stream);
    read.readAll();
    databaseProxy.down();
    // Asking for more makes the stream read its next page from the unreachable database.
    read.follow();
    await waitUntil(() => outages.length > 0, 10_000, 'the poller saw the outage');
    expect(stream.destroyed).toBe(false);

    databaseProxy.up();
    await waitUntil(() => read.positions().length === log.length, 10_000, 'every event written');
    expect(read.positions()).toEqual(log);
    expect(outages.at(-1)).toBe('recovered');
    stream.destroy();
  });
});
