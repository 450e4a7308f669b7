export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds; throws saying what was awaited and for how long. Never a fixed sleep. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, waitMsMax: number, what: string, pollMs = 50): Promise<number> {
  const startedMs = performance.now();
  for (;;) {
    if (await condition()) return performance.now() - startedMs;
    if (performance.now() - startedMs > waitMsMax) throw new Error(`waited ${waitMsMax} ms, but never: ${what}`);
    await sleep(pollMs);
  }
}
