/** One step of an ordered shutdown, named for the log. */
export interface ShutdownStep {
  readonly name: string;
  readonly run: () => Promise<void>;
}

export type ShutdownOutcome =
  | { readonly finished: true }
  /** `step` was still running at the deadline; it and the steps after it were abandoned. */
  | { readonly finished: false; readonly step: string };

/**
 * Runs `steps` one after another until `deadlineMs` (epoch milliseconds). A step that fails is
 * reported and the next one runs: a pool that cannot end cleanly must not keep the HTTP server
 * or PostgreSQL from stopping. A step still running at the deadline is abandoned, not awaited.
 */
export async function runUntil(
  steps: readonly ShutdownStep[],
  deadlineMs: number,
  onFailure: (step: string, error: unknown) => void,
): Promise<ShutdownOutcome> {
  for (const step of steps) {
    const leftMs = deadlineMs - Date.now();
    if (leftMs <= 0) return { finished: false, step: step.name };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timed out'>((resolve) => (timer = setTimeout(() => resolve('timed out'), leftMs)));
    const done = step.run().then(
      () => 'done' as const,
      (error: unknown) => {
        onFailure(step.name, error);
        return 'done' as const;
      },
    );
    const result = await Promise.race([done, timedOut]);
    clearTimeout(timer);
    if (result === 'timed out') return { finished: false, step: step.name };
  }
  return { finished: true };
}
