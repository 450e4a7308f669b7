import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventFeed } from '../../src/api/event-feed.ts';
import { PgEventLog } from '../../src/persistence/event-log.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { waitUntil } from '../support/database.ts';

// The window of recent events that an instance's streams share (src/api/event-feed.ts), over the
// real event log: what it holds after a position is what GET /events holds after it, also once
// older events have left the window; a position it no longer holds sends the reader to the database.

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const windowEventsMax = 16;

async function allPositions(): Promise<number[]> {
  const page = await t.http('GET', '/events?limit=1000');
  expect(page.body.next).toBeNull();
  return page.body.events.map((e: { position: number }) => e.position);
}

async function adjustments(sku: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 10) {
    await Promise.all(
      Array.from({ length: 10 }, (_, k) =>
        t.http('POST', `/products/${sku}/stock-adjustments`, {
          key: `${sku}-${i + k}`,
          body: { delta: 1, reason: 'delivery' },
        }),
      ),
    );
  }
}

describe('the shared window of recent events', () => {
  it('holds exactly what the log holds after a position (one encoded page for all); not older ones', async () => {
    expect((await t.http('POST', '/products', { body: { sku: 'FEED-1', name: 'f', stock: 1 } })).status).toBe(201);
    const feed = new EventFeed(new PgEventLog(t.app.pool), {
      pollIntervalMs: 20,
      windowEventsMax,
      // Small pages, few per round: a round reads several pages and leaves the rest to the next.
      pollPageLimit: 5,
      pollPagesMax: 2,
      sharedPagesMax: 4,
      onStorageError: (error) => {
        throw error;
      },
      onRecovered: () => {},
    });
    let wakes = 0;
    const unsubscribe = feed.subscribe(() => wakes++);
    await waitUntil(() => feed.newestPosition !== null, 5_000, 'the feed anchored at the end of the log');
    const anchor = feed.newestPosition!;
    expect(feed.after(anchor, 100)).toEqual([]);

    await adjustments('FEED-1', 60);
    const log = await allPositions();
    await waitUntil(() => feed.newestPosition === log.at(-1), 10_000, 'the feed read the whole log');
    expect(wakes).toBeGreaterThan(1);

    // The newest windowEventsMax events are held, and the position just before them (the anchor).
    const held = log.slice(-windowEventsMax - 1);
    for (const [i, position] of log.entries()) {
      const after = feed.after(position, 1000)?.map((e) => e.position);
      expect({ position, after }).toEqual({ position, after: held.includes(position) ? log.slice(i + 1) : undefined });
    }
    expect(feed.after(held[0]!, 3)!.map((e) => e.position)).toEqual(log.slice(-windowEventsMax, -windowEventsMax + 3));
    expect(feed.after(log.at(-1)! + 1_000, 10)).toBeUndefined();

    // The same page, encoded once, for every stream at the same position, until the window grows.
    const nearEnd = log.at(-3)!;
    const shared = feed.pageAfter(nearEnd, 5)!;
    expect(feed.pageAfter(nearEnd, 5)).toBe(shared);
    expect(shared.entries.map((e) => e.position)).toEqual(log.slice(-2));
    expect(shared.bytes.toString('utf8')).toBe(shared.entries.map((e) => e.message).join(''));
    expect(feed.pageAfter(log.at(-1)!, 5)!.entries).toEqual([]);
    await adjustments('FEED-1', 10);
    const grown = await allPositions();
    await waitUntil(() => feed.newestPosition === grown.at(-1), 10_000, 'the feed read the new events');
    const regrown = feed.pageAfter(nearEnd, 5)!;
    expect(regrown.entries.map((e) => e.position)).toEqual(grown.slice(log.length - 2, log.length + 3));
    expect(regrown.bytes.toString('utf8')).toBe(regrown.entries.map((e) => e.message).join(''));

    // Nobody listens: the window is let go, and polling stops.
    unsubscribe();
    expect(feed.after(log.at(-1)!, 10)).toBeUndefined();
    expect(feed.pageAfter(log.at(-1)!, 10)).toBeUndefined();
    expect(feed.newestPosition).toBeNull();
    feed.stop();
  });
});
