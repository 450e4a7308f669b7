// The bench scenarios: their names, the products each needs, and which generator drives them.
import { Agent } from 'undici';
import { ApiClient } from '../lib/api-client.ts';
import { OperationLog } from '../lib/request-accounting.ts';
import { runAutocannon } from './autocannon-load.ts';
import type { TimedGeneratorName } from './generator.ts';
import type { LoadResult } from './load-result.ts';
import { runWrk, wrkThreadsDefault } from './wrk-load.ts';
import {
  cartSkuCount,
  lowAchievedShareMin,
  lowRequestsPerSecond,
  mixedSkuCount,
  spreadSkuCount,
  type ScenarioName,
  type ScenarioOptions,
  type TimedScenarioName,
} from './workload.ts';

export type { LoadResult } from './load-result.ts';
export { runBurst } from './burst.ts';
export { runImport, type ImportResult } from './import.ts';
export {
  cartLines,
  cartSkuCount,
  lowConnections,
  scenarioNames,
  type ScenarioName,
  type TimedScenarioName,
} from './workload.ts';

/** Products are created this many at a time before the clock starts. */
const createConcurrencyMax = 500;

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
    case 'carts':
      return Array.from({ length: cartSkuCount }, (_, i) => ({ sku: `C-${i}`, stock: ample }));
    case 'import':
      // It creates its own products: that is what it measures.
      return [];
  }
}

/** Creates the products through the API; throws unless each is answered 2xx. */
export async function createProducts(url: string, products: { sku: string; stock: number }[]): Promise<void> {
  const agent = new Agent({ connections: 64 });
  try {
    const log = new OperationLog(new ApiClient(url, agent, 'bench-setup'));
    for (let i = 0; i < products.length; i += createConcurrencyMax) {
      const some = products.slice(i, i + createConcurrencyMax);
      await Promise.all(some.map((p) => log.acknowledged({ kind: 'create', sku: p.sku, stock: p.stock })));
    }
  } finally {
    await agent.close();
  }
}

export interface TimedRunOptions extends ScenarioOptions {
  readonly generator: TimedGeneratorName;
  /** wrk threads; autocannon ignores it. */
  readonly wrkThreads?: number;
}

export async function runScenario(
  scenario: TimedScenarioName,
  url: string,
  options: TimedRunOptions,
): Promise<LoadResult> {
  const load = await runOn(scenario, url, options);
  if (scenario === 'low' && load.requestsPerSecond < lowAchievedShareMin * lowRequestsPerSecond) {
    process.stderr.write(
      `low: ${load.requestsPerSecond.toFixed(0)} req/s of ${lowRequestsPerSecond} offered: every connection was busy, so its latency is not the latency at ${lowRequestsPerSecond}/s\n`,
    );
  }
  return load;
}

function runOn(scenario: TimedScenarioName, url: string, options: TimedRunOptions): Promise<LoadResult> {
  switch (options.generator) {
    case 'wrk':
      return runWrk(scenario, url, { ...options, threads: options.wrkThreads ?? wrkThreadsDefault });
    case 'autocannon':
      return runAutocannon(scenario, url, options);
    default: {
      const unreachable: never = options.generator;
      throw new Error(`unknown generator ${String(unreachable)}`);
    }
  }
}
