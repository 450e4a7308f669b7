// What one load run measured, the same shape whichever generator drove it, so rows compare.

/** wrk and autocannon drive the timed scenarios; undici fires the burst. */
export type GeneratorName = 'wrk' | 'autocannon' | 'undici';

export interface LoadResult {
  readonly generator: GeneratorName;
  /** Answers received (any status). */
  readonly requests: number;
  readonly durationS: number;
  readonly requestsPerSecond: number;
  /**
   * Answers that changed stock, per second: 201 reservations, and 200 purchases or cancels. Not
   * the 200s of GET /health/live that mixed sends while it has nothing to finish (`fillers`).
   */
  readonly succeededPerSecond: number;
  /** Latency of every answer, any status, from the request written to the answer read. */
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  readonly latencyMsP999: number;
  readonly latencyMsMax: number;
  readonly statusCounts: Record<string, number>;
  /** GET /health/live requests sent in place of a purchase or cancel (mixed only); in `requests`. */
  readonly fillers: number;
  /** Socket errors (connect, read, write), timeouts not included. */
  readonly errors: number;
  /** Requests not answered within the generator's timeout (30 s). */
  readonly timeouts: number;
}

/** An answer that changed stock: a 201 reservation, or a 200 that carries a reservation. */
export function changedStock(status: number, body: string): boolean {
  // Purchase and cancel answer 200 with the reservation; /health/live answers {"status":"live"}.
  return status === 201 || (status === 200 && body.includes('"id":"'));
}
