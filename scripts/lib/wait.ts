export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `condition` until it holds and returns how long that took; throws saying what was
 * awaited and for how long. Never a fixed sleep.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  waitMsMax: number,
  what = 'condition',
  pollMs = 20,
): Promise<number> {
  const startedMs = performance.now();
  for (;;) {
    if (await condition()) return performance.now() - startedMs;
    const waitedMs = performance.now() - startedMs;
    if (waitedMs > waitMsMax) throw new Error(`waited ${Math.round(waitedMs)} ms, but never: ${what}`);
    await sleep(pollMs);
  }
}
