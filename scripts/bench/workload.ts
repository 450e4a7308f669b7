// What each scenario asks of the service, shared by both load generators and the wrk scripts.

export type ScenarioName = 'hot' | 'spread' | 'mixed' | 'burst' | 'low' | 'carts' | 'import';
export const scenarioNames: readonly ScenarioName[] = ['hot', 'spread', 'mixed', 'burst', 'low', 'carts', 'import'];
/**
 * The scenarios that run for a duration under a load generator (burst fires a fixed count of
 * reservations, import a fixed count of bulk creates).
 */
export type TimedScenarioName = Exclude<ScenarioName, 'burst' | 'import'>;

export interface ScenarioOptions {
  readonly connections: number;
  readonly durationS: number;
  readonly onTick?: (secondsDone: number) => void;
}

/** spread cycles reservations over S-0 .. S-9999 (passed to scripts/bench/wrk/spread.lua). */
export const spreadSkuCount = 10_000;
/** carts reserves carts over C-0 .. C-999 (passed to scripts/bench/wrk/carts.lua). */
export const cartSkuCount = 1_000;
/** Lines per cart in the carts scenario, one unit each. */
export const cartLines = 3;
/** mixed reserves over M-0 .. M-99 (passed to scripts/bench/wrk/mixed.lua). */
export const mixedSkuCount = 100;
/**
 * The low-load scenario: a steady 500 requests/s, paced by the generator. The connections only
 * carry it: at 500/s, n connections hold out while latency stays under n / 500 s (Little's law).
 * 10 connections capped the rate at ~430/s once a commit took 20 ms; 50 leave room up to 100 ms.
 */
export const lowConnections = 50;
export const lowRequestsPerSecond = 500;
/** Below this share of the offered rate, the low figure is not latency at 500/s: bench warns. */
export const lowAchievedShareMin = 0.95;

/**
 * The SKUs of cart `n` (0-based) in the carts scenario: n, n + count/lines, n + 2 count/lines, ...
 * (mod count). They are distinct (a cart names a SKU once), spread over the range, and each is
 * shared with the carts that start near it, so carts contend for products as a shop's do.
 * scripts/bench/wrk/carts.lua computes the same.
 */
export function cartSkus(n: number, count = cartSkuCount, lines = cartLines): string[] {
  const stride = Math.floor(count / lines);
  return Array.from({ length: lines }, (_, k) => `C-${(n + k * stride) % count}`);
}

/**
 * The import scenario: importProductCount new products through POST /products/bulk, in calls of
 * importCallSize (the most one call takes), importConcurrency calls at a time - enough for the
 * server to parse, check and hash one call while the database writes another.
 */
export const importProductCount = 100_000;
export const importCallSize = 1_000;
export const importConcurrency = 4;
