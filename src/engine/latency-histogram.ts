// Upper bounds of the latency buckets in milliseconds. Fixed and small, so that every live actor
// can afford its own histogram (about 100 bytes) and percentiles need no samples kept.
export const latencyBucketBoundsMs = [
  0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000,
] as const;

const bucketCount = latencyBucketBoundsMs.length + 1;
const noCounts: Readonly<Uint32Array> = new Uint32Array(bucketCount);

export class LatencyHistogram {
  /** Allocated on the first sample: an actor that was only read never pays for its buckets. */
  private buckets: Uint32Array | undefined;
  count = 0;
  sumMs = 0;

  get counts(): Readonly<Uint32Array> {
    return this.buckets ?? noCounts;
  }

  record(ms: number): void {
    let i = 0;
    while (i < latencyBucketBoundsMs.length && ms > latencyBucketBoundsMs[i]!) i++;
    this.buckets ??= new Uint32Array(bucketCount);
    this.buckets[i]!++;
    this.count++;
    this.sumMs += ms;
  }

  /** The upper bound of the bucket holding quantile q (0..1); 0 when empty. */
  quantileMs(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return latencyBucketBoundsMs[i] ?? Number.POSITIVE_INFINITY;
    }
    return Number.POSITIVE_INFINITY;
  }

  meanMs(): number {
    return this.count === 0 ? 0 : this.sumMs / this.count;
  }
}
