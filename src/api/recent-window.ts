import { latencyBucketBoundsMs } from '../engine/latency-histogram.ts';
import { windowSeconds } from '../engine/limits.ts';

/** How a command ended, for people: done, refused by a business rule or the client, or failed. */
export type OutcomeIndex = 0 | 1 | 2;
export const outcomeOk: OutcomeIndex = 0;
export const outcomeRejected: OutcomeIndex = 1;
export const outcomeError: OutcomeIndex = 2;

// A few spare slots, so that the 60 complete seconds before the current one never share a slot
// with the current second.
const slotCount = windowSeconds + 4;
const bucketCount = latencyBucketBoundsMs.length + 1;
const largestBoundMs = latencyBucketBoundsMs[latencyBucketBoundsMs.length - 1]!;

export interface WindowFigures {
  readonly operations: number;
  readonly rejected: number;
  readonly errors: number;
  readonly reservations: number;
  readonly reservationLatencyMsP50: number;
  readonly reservationLatencyMsP99: number;
}

export interface SecondFigures extends WindowFigures {
  /** The start of the second, epoch milliseconds. */
  readonly atMs: number;
}

/**
 * The quantile q (0..1) of latencies bucketed by latencyBucketBoundsMs: the upper bound of the
 * bucket that holds it, as Prometheus's histogram_quantile answers for its top bucket, so a
 * latency past the largest bound reads as that bound and never as Infinity (JSON has none).
 */
export function bucketQuantileMs(counts: ArrayLike<number>, offset: number, total: number, q: number): number {
  if (total === 0) return 0;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < bucketCount; i++) {
    seen += counts[offset + i]!;
    if (seen >= rank) return latencyBucketBoundsMs[i] ?? largestBoundMs;
  }
  return largestBoundMs;
}

function bucketOf(latencyMs: number): number {
  let i = 0;
  while (i < latencyBucketBoundsMs.length && latencyMs > latencyBucketBoundsMs[i]!) i++;
  return i;
}

/**
 * A ring of per-second figures over the last minute: operations by outcome and reservation
 * latency buckets. Every array is allocated once, so recording costs a few array writes and
 * allocates nothing; that matters because it runs for every command.
 */
export class RecentWindow {
  private readonly secondOf = new Float64Array(slotCount).fill(-1);
  private readonly operations = new Uint32Array(slotCount);
  private readonly rejected = new Uint32Array(slotCount);
  private readonly errors = new Uint32Array(slotCount);
  private readonly reservations = new Uint32Array(slotCount);
  private readonly latencyCounts = new Uint32Array(slotCount * bucketCount);

  recordOperation(nowMs: number, outcome: OutcomeIndex): void {
    const slot = this.slotFor(nowMs);
    this.operations[slot]!++;
    if (outcome === outcomeRejected) this.rejected[slot]!++;
    else if (outcome === outcomeError) this.errors[slot]!++;
  }

  recordReservation(nowMs: number, latencyMs: number): void {
    const slot = this.slotFor(nowMs);
    this.reservations[slot]!++;
    this.latencyCounts[slot * bucketCount + bucketOf(latencyMs)]!++;
  }

  /** The last minute up to now, the current (partial) second included. */
  lastMinute(nowMs: number): WindowFigures {
    const current = Math.floor(nowMs / 1000);
    return this.sum(current - windowSeconds + 1, current);
  }

  /** The 60 complete seconds before the current one, oldest first; empty seconds read as zeros. */
  perSecond(nowMs: number): SecondFigures[] {
    const current = Math.floor(nowMs / 1000);
    const seconds: SecondFigures[] = [];
    for (let second = current - windowSeconds; second < current; second++) {
      seconds.push({ atMs: second * 1000, ...this.sum(second, second) });
    }
    return seconds;
  }

  private slotFor(nowMs: number): number {
    const second = Math.floor(nowMs / 1000);
    const slot = second % slotCount;
    if (this.secondOf[slot] !== second) {
      // The slot last held a second that has left the window: it starts again from zero.
      this.secondOf[slot] = second;
      this.operations[slot] = 0;
      this.rejected[slot] = 0;
      this.errors[slot] = 0;
      this.reservations[slot] = 0;
      this.latencyCounts.fill(0, slot * bucketCount, (slot + 1) * bucketCount);
    }
    return slot;
  }

  /** Sums the seconds first..last (inclusive) that are still in the ring. */
  private sum(first: number, last: number): WindowFigures {
    let operations = 0;
    let rejected = 0;
    let errors = 0;
    let reservations = 0;
    const latency = new Uint32Array(bucketCount);
    for (let second = first; second <= last; second++) {
      const slot = second % slotCount;
      if (this.secondOf[slot] !== second) continue;
      operations += this.operations[slot]!;
      rejected += this.rejected[slot]!;
      errors += this.errors[slot]!;
      reservations += this.reservations[slot]!;
      for (let b = 0; b < bucketCount; b++) latency[b]! += this.latencyCounts[slot * bucketCount + b]!;
    }
    return {
      operations,
      rejected,
      errors,
      reservations,
      reservationLatencyMsP50: bucketQuantileMs(latency, 0, reservations, 0.5),
      reservationLatencyMsP99: bucketQuantileMs(latency, 0, reservations, 0.99),
    };
  }
}
