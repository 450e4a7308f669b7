// The burst scenario: 10,000 reservations fired at once on warm connections, driven by undici in
// this process (neither wrk nor autocannon can fire a fixed number at once and wait for all).
import { Agent, request } from 'undici';
import { keySequence, runKeyPrefix } from './keys.ts';
import { changedStock, type LoadResult } from './load-result.ts';

const json = { 'content-type': 'application/json' };

/** 10,000 reservation requests fired at once on warm connections; the time until the last answer. */
export async function runBurst(
  url: string,
  connections: number,
  requestCount = 10_000,
): Promise<LoadResult & { wallMs: number }> {
  const agent = new Agent({ connections, pipelining: Math.ceil(requestCount / connections), keepAliveTimeout: 30_000 });
  const nextKey = keySequence(runKeyPrefix('burst'));
  // Warm up: open the connections first, so the burst measures the service, not TCP handshakes.
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const res = await request(`${url}/health/live`, { dispatcher: agent });
      await res.body.text();
    }),
  );
  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  let stockChanges = 0;
  const startedMs = performance.now();
  await Promise.all(
    Array.from({ length: requestCount }, async () => {
      const t0 = performance.now();
      const res = await request(`${url}/products/HOT/reservations`, {
        // idempotent + non-blocking: otherwise undici never pipelines a POST and at most one request
        // per connection would be on the wire. Safe: each request carries its own Idempotency-Key.
        method: 'POST',
        headers: { ...json, 'idempotency-key': nextKey() },
        body: '{"quantity":1}',
        dispatcher: agent,
        idempotent: true,
        blocking: false,
      });
      const body = await res.body.text();
      latencies.push(performance.now() - t0);
      statusCounts[res.statusCode] = (statusCounts[res.statusCode] ?? 0) + 1;
      if (changedStock(res.statusCode, body)) stockChanges++;
    }),
  );
  const wallMs = performance.now() - startedMs;
  await agent.close();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return {
    generator: 'undici',
    wallMs,
    requests: requestCount,
    durationS: wallMs / 1000,
    requestsPerSecond: requestCount / (wallMs / 1000),
    succeededPerSecond: stockChanges / (wallMs / 1000),
    latencyMsP50: q(0.5),
    latencyMsP99: q(0.99),
    latencyMsP999: q(0.999),
    latencyMsMax: latencies.at(-1)!,
    statusCounts,
    fillers: 0,
    errors: 0,
    timeouts: 0,
  };
}
