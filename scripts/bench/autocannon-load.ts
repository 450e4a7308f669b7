// The timed scenarios driven by autocannon (JavaScript, in this process): the fallback where wrk
// is missing. Same scenarios and the same LoadResult as wrk-load.ts.
import autocannon from 'autocannon';
import { keySequence, runKeyPrefix } from './keys.ts';
import { changedStock, type LoadResult } from './load-result.ts';
import {
  cartSkus,
  lowConnections,
  lowRequestsPerSecond,
  mixedSkuCount,
  spreadSkuCount,
  type ScenarioOptions,
  type TimedScenarioName,
} from './workload.ts';

/** Ids of reservations made earlier in mixed, waiting for a purchase or cancel. */
const idsMax = 100_000;
const timeoutS = 30;

const json = { 'content-type': 'application/json' };

/** Counters the request callbacks add to while the run goes. */
interface Tally {
  stockChanges: number;
  fillers: number;
}

function reserveRequest(
  tally: Tally,
  nextKey: () => string,
  skuOf: () => string,
  onId?: (id: string) => void,
): autocannon.Request {
  return {
    method: 'POST',
    path: '/products/HOT/reservations',
    headers: json,
    body: '{"quantity":1}',
    setupRequest: (req: autocannon.Request) => {
      req.path = `/products/${skuOf()}/reservations`;
      req.headers = { ...json, 'idempotency-key': nextKey() };
      return req;
    },
    onResponse: (status: number, body: string) => {
      if (changedStock(status, body)) tally.stockChanges++;
      if (status === 201 && onId !== undefined) onId(JSON.parse(body).id);
    },
  };
}

/** POST /reservations: a cart of one unit of each SKU `skusOf` names. */
function cartRequest(tally: Tally, nextKey: () => string, skusOf: () => string[]): autocannon.Request {
  return {
    method: 'POST',
    path: '/reservations',
    headers: json,
    setupRequest: (req: any) => {
      req.headers = { ...json, 'idempotency-key': nextKey() };
      req.body = JSON.stringify({ lines: skusOf().map((sku) => ({ sku, quantity: 1 })) });
      return req;
    },
    onResponse: (status: number, body: string) => {
      if (changedStock(status, body)) tally.stockChanges++;
    },
  };
}

function finishRequest(
  tally: Tally,
  action: 'purchase' | 'cancel',
  takeId: () => string | undefined,
): autocannon.Request {
  return {
    method: 'POST',
    path: '/health/live',
    setupRequest: (req: autocannon.Request) => {
      const id = takeId();
      // Nothing to finish yet: a cheap read keeps the connection busy instead.
      if (id === undefined) {
        tally.fillers++;
        req.method = 'GET';
        req.path = '/health/live';
      } else {
        req.method = 'POST';
        req.path = `/reservations/${id}/${action}`;
      }
      return req;
    },
    // The 200 of /health/live is no success: only an answer carrying the reservation counts.
    onResponse: (status: number, body: string) => {
      if (changedStock(status, body)) tally.stockChanges++;
    },
  };
}

function run(
  url: string,
  options: ScenarioOptions,
  tally: Tally,
  requests: autocannon.Request[],
  extra: Partial<autocannon.Options> = {},
): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    let seconds = 0;
    const instance = autocannon(
      { url, connections: options.connections, duration: options.durationS, requests, timeout: timeoutS, ...extra },
      (error, r) => {
        clearInterval(ticker);
        if (error) return reject(error instanceof Error ? error : new Error(String(error)));
        const statusCounts: Record<string, number> = {};
        for (const [code, v] of Object.entries(r.statusCodeStats ?? {}))
          statusCounts[code] = Number((v as { count: number }).count);
        const durationS = r.duration;
        resolve({
          generator: 'autocannon',
          requests: r.requests.total,
          durationS,
          requestsPerSecond: r.requests.total / durationS,
          succeededPerSecond: tally.stockChanges / durationS,
          latencyMsP50: r.latency.p50,
          latencyMsP99: r.latency.p99,
          latencyMsP999: (r.latency as unknown as Record<string, number>).p99_9 ?? r.latency.p99,
          latencyMsMax: r.latency.max,
          statusCounts,
          fillers: tally.fillers,
          // autocannon counts a timeout as an error too.
          errors: r.errors - r.timeouts,
          timeouts: r.timeouts,
        });
      },
    );
    const ticker = setInterval(() => options.onTick?.(++seconds), 1000);
    instance.on('error', () => {});
  });
}

export async function runAutocannon(
  scenario: TimedScenarioName,
  url: string,
  options: ScenarioOptions,
): Promise<LoadResult> {
  const tally: Tally = { stockChanges: 0, fillers: 0 };
  const nextKey = keySequence(runKeyPrefix('autocannon'));
  switch (scenario) {
    case 'hot':
      return run(url, options, tally, [reserveRequest(tally, nextKey, () => 'HOT')]);
    case 'low':
      // A steady offered rate over a few connections: the latency an ordinary day sees. Raw
      // latencies, as wrk-load.ts reports them: with a rate, autocannon would otherwise add
      // coordinated-omission samples.
      return run(
        url,
        { ...options, connections: lowConnections },
        tally,
        [reserveRequest(tally, nextKey, () => 'HOT')],
        { overallRate: lowRequestsPerSecond, ignoreCoordinatedOmission: true },
      );
    case 'spread': {
      let n = 0;
      return run(url, options, tally, [reserveRequest(tally, nextKey, () => `S-${n++ % spreadSkuCount}`)]);
    }
    case 'carts': {
      let n = 0;
      return run(url, options, tally, [cartRequest(tally, nextKey, () => cartSkus(n++))]);
    }
    case 'mixed': {
      // Per 10 operations: 7 reserves, 2 purchases and 1 cancel of reservations made earlier.
      let n = 0;
      const ids: string[] = [];
      const sku = () => `M-${n++ % mixedSkuCount}`;
      const keep = (id: string) => {
        if (ids.length < idsMax) ids.push(id);
      };
      const take = () => ids.pop();
      const reserve = reserveRequest(tally, nextKey, sku, keep);
      return run(url, options, tally, [
        reserve,
        reserve,
        reserve,
        reserve,
        reserve,
        reserve,
        reserve,
        finishRequest(tally, 'purchase', take),
        finishRequest(tally, 'purchase', take),
        finishRequest(tally, 'cancel', take),
      ]);
    }
  }
}
