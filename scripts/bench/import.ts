// The import scenario: 100,000 new products created by 100 calls of POST /products/bulk, a few at
// a time, driven by undici in this process (each call is one large request, not a load of small
// ones). Every call carries its own Idempotency-Key, as an importer that retries would send it.
import { Agent, request } from 'undici';
import { keySequence, runKeyPrefix } from './keys.ts';
import type { LoadResult } from './load-result.ts';
import { importCallSize, importConcurrency, importProductCount } from './workload.ts';

export interface ImportResult extends LoadResult {
  /** Products answered 201 (created by this run). */
  readonly productsCreated: number;
  readonly productsPerSecond: number;
  readonly callSize: number;
  readonly concurrency: number;
}

/** The body of call `n` (0-based): products I-<n * size> .. I-<n * size + size - 1>. */
function callBody(n: number, size: number): string {
  const products = Array.from({ length: size }, (_, i) => {
    const id = n * size + i;
    return { sku: `I-${id}`, name: `Imported product ${id}`, stock: 1_000 + (id % 1_000) };
  });
  return JSON.stringify({ products });
}

export async function runImport(
  url: string,
  products = importProductCount,
  size = importCallSize,
  concurrency = importConcurrency,
): Promise<ImportResult> {
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 });
  const nextKey = keySequence(runKeyPrefix('import'));
  const calls = Math.ceil(products / size);
  // Built before the clock starts: the figure is the service's, not this client's JSON.stringify.
  const bodies = Array.from({ length: calls }, (_, n) => callBody(n, Math.min(size, products - n * size)));
  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  let created = 0;
  let next = 0;
  const startedMs = performance.now();
  const worker = async () => {
    for (let n = next++; n < calls; n = next++) {
      const t0 = performance.now();
      const res = await request(`${url}/products/bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': nextKey() },
        body: bodies[n],
        dispatcher: agent,
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
      const text = await res.body.text();
      latencies.push(performance.now() - t0);
      statusCounts[res.statusCode] = (statusCounts[res.statusCode] ?? 0) + 1;
      if (res.statusCode === 200) {
        const { results } = JSON.parse(text) as { results: { status: number }[] };
        created += results.filter((r) => r.status === 201).length;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wallMs = performance.now() - startedMs;
  await agent.close();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  const durationS = wallMs / 1000;
  return {
    generator: 'undici',
    requests: calls,
    durationS,
    requestsPerSecond: calls / durationS,
    succeededPerSecond: created / durationS,
    latencyMsP50: q(0.5),
    latencyMsP99: q(0.99),
    latencyMsP999: q(0.999),
    latencyMsMax: latencies.at(-1)!,
    statusCounts,
    fillers: 0,
    errors: 0,
    timeouts: 0,
    productsCreated: created,
    productsPerSecond: created / durationS,
    callSize: size,
    concurrency,
  };
}
