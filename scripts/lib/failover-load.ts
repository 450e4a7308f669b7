import { answeredAtMs, type Answer } from './api-client.ts';
import { startLoad, type Load, type OperationLog } from './request-accounting.ts';

// The failover test's and the proof's load and their reading of it: clients that keep reserving,
// purchasing and cancelling through a failover, the window without service their answers show, and
// the app's log line each time it followed the primary to another node.

/**
 * Clients reserving and then purchasing or cancelling each reservation, every request with its own
 * Idempotency-Key, back to back until stopped; `tag` keeps each scenario's keys apart.
 */
export function mixedLoad(log: OperationLog, skus: readonly string[], tag: string, workers = 16): Load {
  return startLoad(log, {
    workers,
    next: (w, i) => ({
      kind: 'reserve',
      sku: skus[(w + i) % skus.length]!,
      key: `${tag}-${w}-${i}`,
      quantity: 1,
      ttlSeconds: 600,
    }),
    then: (r, _w, i) => ({
      kind: i % 3 === 0 ? 'cancel' : 'purchase',
      sku: r.sku,
      key: `${tag}-then-${r.id}`,
      reservationId: r.id,
    }),
  });
}

/** What clients saw of an outage that began at `fromMs`. */
export interface Outage {
  /** Answers 503 (or no answer at all) that arrived after the outage began. */
  readonly refused: number;
  /** From the first 503 to the first success of a request sent after it (null: no 503 at all). */
  readonly windowMs: number | null;
  /** From the outage's start to the first success of a request sent after it. */
  readonly toServiceMs: number;
}

const succeeded = (a: Answer) => a.status !== null && a.status < 300;
const refused = (a: Answer) => a.status === null || a.status >= 500;

/** The window without service as the clients' answers show it. */
export function outageSeen(answers: readonly Answer[], fromMs: number): Outage {
  const after = answers.filter((a) => answeredAtMs(a) >= fromMs);
  const refusals = after.filter(refused);
  const firstRefusalMs = Math.min(...refusals.map(answeredAtMs));
  const firstSuccessAfter = (sinceMs: number) =>
    Math.min(...after.filter((a) => succeeded(a) && a.sentAtMs >= sinceMs).map(answeredAtMs));
  return {
    refused: refusals.length,
    windowMs: refusals.length === 0 ? null : firstSuccessAfter(firstRefusalMs) - firstRefusalMs,
    toServiceMs: firstSuccessAfter(fromMs) - fromMs,
  };
}

/** A line the app logged when its locator followed the primary (src/app.ts, logLocatorEvent). */
export interface PrimaryMove {
  readonly atMs: number;
  readonly from: string;
  readonly to: string;
  readonly searchMs: number;
}

/** The move a line of the app's log reports, or null. */
export function primaryMoveOf(line: string): PrimaryMove | null {
  if (!line.includes('"the primary moved')) return null;
  const { time, from, to, searchMs } = JSON.parse(line) as Record<string, unknown>;
  return { atMs: Number(time), from: String(from), to: String(to), searchMs: Number(searchMs) };
}
