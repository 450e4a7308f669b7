import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../../scripts/lib/server-process.ts';
import { sleep } from '../../scripts/lib/wait.ts';
import { http } from '../support/app.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';
import { StreamFollower } from '../support/event-stream-client.ts';

// Two instances over one database: an event committed through one reaches the streams of the
// other through the database alone (each instance polls the log while it has streams open).

const servers: ServerProcess[] = [];
const followers: StreamFollower[] = [];
let db: TestDatabase | undefined;
afterAll(async () => {
  for (const f of followers) f.close();
  await Promise.all(servers.map((s) => s.stop()));
  await db?.drop();
});

const writes = 100;
const writeIntervalMs = 25;

function quantile(sortedMs: readonly number[], q: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.ceil(q * sortedMs.length) - 1)]!;
}

const figures = (sortedMs: readonly number[]) =>
  `p50 ${quantile(sortedMs, 0.5).toFixed(0)} ms, p99 ${quantile(sortedMs, 0.99).toFixed(0)} ms, ` +
  `max ${sortedMs.at(-1)!.toFixed(0)} ms`;

describe('event streams over several instances', () => {
  it(`events written through A reach a stream on B within 1 s (p99 over ${writes} writes)`, async () => {
    db = await createTestDatabase();
    for (let i = 0; i < 2; i++) servers.push(await startServerProcess(db.url, { SECVENTORY_SWEEP_INTERVAL_MS: '500' }));
    const [a, b] = servers as [ServerProcess, ServerProcess];
    expect((await http(a.url, 'POST', '/products', { body: { sku: 'FAR-1', name: 'x', stock: 100_000 } })).status).toBe(
      201,
    );
    const onB = new StreamFollower(`${b.url}/events/stream`);
    const onA = new StreamFollower(`${a.url}/events/stream`);
    followers.push(onB, onA);
    await waitUntil(() => onB.received.length === 1 && onA.received.length === 1, 10_000, 'both streams open');

    // A's answer is the moment the write is acknowledged: from then on every stream must get it.
    const answeredAtMs = new Map<string, number>();
    for (let i = 0; i < writes; i++) {
      const requestId = `far-${i}`;
      const answer = await http(a.url, 'POST', '/products/FAR-1/reservations', {
        key: requestId,
        headers: { 'x-request-id': requestId },
        body: { quantity: 1 },
      });
      answeredAtMs.set(requestId, performance.now());
      expect(answer.status).toBe(201);
      await sleep(writeIntervalMs);
    }
    await waitUntil(() => onB.received.length === writes + 1 && onA.received.length === writes + 1, 10_000, 'all');

    const delays = (follower: StreamFollower) =>
      follower.received
        .slice(1)
        .map((r) => r.atMs - answeredAtMs.get(r.event.requestId as string)!)
        .sort((x, y) => x - y);
    const [onBMs, onAMs] = [delays(onB), delays(onA)];
    console.info(`A's answer -> arrival on a stream of B: ${figures(onBMs)}`);
    console.info(`A's answer -> arrival on a stream of A: ${figures(onAMs)}`);
    expect(onB.received.map((r) => r.event)).toEqual(onA.received.map((r) => r.event));
    expect(quantile(onBMs, 0.99)).toBeLessThan(1_000);
  });
});
