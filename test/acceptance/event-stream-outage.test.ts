import http from 'node:http';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { EventStreams } from '../../src/api/event-streams.ts';
import { createPool } from '../../src/persistence/database.ts';
import { PgEventLog } from '../../src/persistence/event-log.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { CuttableProxy } from '../support/cuttable-proxy.ts';
import { waitUntil } from '../support/database.ts';

// A stream whose own read of the database fails, deterministically: the stream is read in this
// process, one page at a time, so the test knows that its next page must come from the database
// (the events are older than the shared window) and makes the database unreachable right then.

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
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

    expect(streams.reserve()).toBe(true);
    const firstPage = (await streams.firstPage(0))!;
    const response = new http.ServerResponse(new http.IncomingMessage(new net.Socket()));
    const stream = streams.open({ position: 0, sku: undefined, firstPage }, response);
    // The shared window starts at the end of the log: every later page of this stream is the database's.
    await waitUntil(() => streams.feed.newestPosition === log.at(-1), 5_000, 'the window anchored at the end');

    let text = '';
    stream.setEncoding('utf8');
    const readAll = () => {
      for (let chunk = stream.read(); chunk !== null; chunk = stream.read()) text += chunk;
    };
    readAll();
    databaseProxy.down();
    // Asking for more makes the stream read its next page from the unreachable database.
    stream.on('readable', readAll);
    await waitUntil(() => outages.length > 0, 10_000, 'the poller saw the outage');
    expect(stream.destroyed).toBe(false);

    databaseProxy.up();
    const positions = () => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    await waitUntil(() => positions().length === log.length, 10_000, 'every event written');
    expect(positions()).toEqual(log);
    expect(outages.at(-1)).toBe('recovered');
    stream.destroy();
  });
});
