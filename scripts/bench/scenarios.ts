import autocannon from 'autocannon';
import { Agent, request } from 'undici';

export type ScenarioName = 'hot' | 'spread' | 'mixed' | 'burst' | 'low';
export const scenarioNames: readonly ScenarioName[] = ['hot', 'spread', 'mixed', 'burst', 'low'];

export interface LoadResult {
  readonly requests: number;
  readonly durationS: number;
  readonly requestsPerSecond: number;
  /** 2xx answers that changed stock (201 reservations, 200 purchases/cancels). */
  readonly succeededPerSecond: number;
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  readonly latencyMsP999: number;
  readonly latencyMsMax: number;
  readonly statusCounts: Record<string, number>;
  readonly errors: number;
  readonly timeouts: number;
}

export interface ScenarioOptions {
  readonly connections: number;
  readonly durationS: number;
  readonly onTick?: (secondsDone: number) => void;
}

const json = { 'content-type': 'application/json' };
export const spreadSkuCount = 10_000;
export const mixedSkuCount = 100;
/** The low-load scenario: a steady 500 requests/s over a few connections. */
export const lowConnections = 10;

/** The products each scenario needs, created before the clock starts. */
export function productsFor(scenario: ScenarioName): { sku: string; stock: number }[] {
  const ample = 2_000_000_000;
  switch (scenario) {
    case 'hot':
    case 'burst':
    case 'low':
      return [{ sku: 'HOT', stock: ample }];
    case 'spread':
      return Array.from({ length: spreadSkuCount }, (_, i) => ({ sku: `S-${i}`, stock: 1_000_000 }));
    case 'mixed':
      return Array.from({ length: mixedSkuCount }, (_, i) => ({ sku: `M-${i}`, stock: ample }));
  }
}

export async function createProducts(url: string, products: { sku: string; stock: number }[]): Promise<void> {
  const agent = new Agent({ connections: 64 });
  for (let i = 0; i < products.length; i += 500) {
    await Promise.all(products.slice(i, i + 500).map(async (p) => {
      const res = await request(`${url}/products`, { method: 'POST', headers: json, body: JSON.stringify({ sku: p.sku, name: p.sku, stock: p.stock }), dispatcher: agent });
      await res.body.text();
      if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`creating ${p.sku}: ${res.statusCode}`);
    }));
  }
  await agent.close();
}

let keySeq = 0;
const nextKey = () => `bench-${process.pid}-${++keySeq}`;

function reserveRequest(skuOf: () => string, onId?: (id: string) => void): autocannon.Request {
  return {
    method: 'POST',
    path: '/products/HOT/reservations',
    headers: json,
    body: '{"quantity":1}',
    setupRequest: (req: any) => {
      req.path = `/products/${skuOf()}/reservations`;
      req.headers = { ...json, 'idempotency-key': nextKey() };
      return req;
    },
    onResponse: onId === undefined ? undefined : (status: number, body: string) => {
      if (status === 201) onId(JSON.parse(body).id);
    },
  } as autocannon.Request;
}

function finishRequest(action: 'purchase' | 'cancel', takeId: () => string | undefined): autocannon.Request {
  return {
    method: 'POST',
    path: '/health/live',
    setupRequest: (req: any) => {
      const id = takeId();
      // Nothing to finish yet: a cheap read keeps the connection busy instead.
      if (id === undefined) {
        req.method = 'GET';
        req.path = '/health/live';
      } else {
        req.method = 'POST';
        req.path = `/reservations/${id}/${action}`;
      }
      return req;
    },
  } as autocannon.Request;
}

function run(url: string, options: ScenarioOptions, requests: autocannon.Request[], extra: Partial<autocannon.Options> = {}): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    let seconds = 0;
    const instance = autocannon({ url, connections: options.connections, duration: options.durationS, requests, timeout: 30, ...extra }, (error, r) => {
      clearInterval(ticker);
      if (error) return reject(error);
      const statusCounts: Record<string, number> = {};
      for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statusCounts[code] = Number((v as { count: number }).count);
      const succeeded = (statusCounts['201'] ?? 0) + (requests.length > 1 ? statusCounts['200'] ?? 0 : 0);
      const durationS = r.duration;
      resolve({
        requests: r.requests.total,
        durationS,
        requestsPerSecond: r.requests.total / durationS,
        succeededPerSecond: succeeded / durationS,
        latencyMsP50: r.latency.p50,
        latencyMsP99: r.latency.p99,
        latencyMsP999: (r.latency as unknown as Record<string, number>).p99_9 ?? r.latency.p99,
        latencyMsMax: r.latency.max,
        statusCounts,
        errors: r.errors,
        timeouts: r.timeouts,
      });
    });
    const ticker = setInterval(() => options.onTick?.(++seconds), 1000);
    instance.on('error', () => {});
  });
}

export async function runScenario(scenario: Exclude<ScenarioName, 'burst'>, url: string, options: ScenarioOptions): Promise<LoadResult> {
  switch (scenario) {
    case 'hot':
      return run(url, options, [reserveRequest(() => 'HOT')]);
    case 'low':
      // A steady 500 requests/s: the latency an ordinary day sees.
      return run(url, { ...options, connections: lowConnections }, [reserveRequest(() => 'HOT')], { overallRate: 500 });
    case 'spread': {
      let n = 0;
      return run(url, options, [reserveRequest(() => `S-${n++ % spreadSkuCount}`)]);
    }
    case 'mixed': {
      // Per 10 operations: 7 reserves, 2 purchases and 1 cancel of reservations made earlier.
      let n = 0;
      const ids: string[] = [];
      const sku = () => `M-${n++ % mixedSkuCount}`;
      const keep = (id: string) => {
        if (ids.length < 100_000) ids.push(id);
      };
      const take = () => ids.pop();
      const reserve = reserveRequest(sku, keep);
      return run(url, options, [reserve, reserve, reserve, reserve, reserve, reserve, reserve,
        finishRequest('purchase', take), finishRequest('purchase', take), finishRequest('cancel', take)]);
    }
  }
}

/** 10,000 reservation requests fired at once on warm connections; the time until the last answer. */
export async function runBurst(url: string, connections: number, requestCount = 10_000): Promise<LoadResult & { wallMs: number }> {
  const agent = new Agent({ connections, pipelining: Math.ceil(requestCount / connections), keepAliveTimeout: 30_000 });
  // Warm up: open the connections first, so the burst measures the service, not TCP handshakes.
  await Promise.all(Array.from({ length: connections }, async () => {
    const res = await request(`${url}/health/live`, { dispatcher: agent });
    await res.body.text();
  }));
  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  const startedMs = performance.now();
  await Promise.all(Array.from({ length: requestCount }, async () => {
    const t0 = performance.now();
    const res = await request(`${url}/products/HOT/reservations`, {
      // idempotent + non-blocking: otherwise undici never pipelines a POST and at most one request
      // per connection would be on the wire. Safe: each request carries its own Idempotency-Key.
      method: 'POST', headers: { ...json, 'idempotency-key': nextKey() }, body: '{"quantity":1}', dispatcher: agent, idempotent: true, blocking: false,
    });
    await res.body.text();
    latencies.push(performance.now() - t0);
    statusCounts[res.statusCode] = (statusCounts[res.statusCode] ?? 0) + 1;
  }));
  const wallMs = performance.now() - startedMs;
  await agent.close();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return {
    wallMs,
    requests: requestCount,
    durationS: wallMs / 1000,
    requestsPerSecond: requestCount / (wallMs / 1000),
    succeededPerSecond: (statusCounts['201'] ?? 0) / (wallMs / 1000),
    latencyMsP50: q(0.5),
    latencyMsP99: q(0.99),
    latencyMsP999: q(0.999),
    latencyMsMax: latencies.at(-1)!,
    statusCounts,
    errors: 0,
    timeouts: 0,
  };
}
