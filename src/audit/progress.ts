import { progressIntervalMs } from '../engine/limits.ts';

/** Says how far verify got, at most once per progressIntervalMs. */
export class Progress {
  private lastMs = performance.now();
  constructor(
    private readonly say: (line: string) => void,
    private readonly startedMs: number,
  ) {}

  now(line: () => string): void {
    const nowMs = performance.now();
    if (nowMs - this.lastMs < progressIntervalMs) return;
    this.lastMs = nowMs;
    this.say(`${line()}, ${((nowMs - this.startedMs) / 1000).toFixed(1)} s`);
  }
}

export const percent = (done: number, total: number) => `${total === 0 ? 100 : Math.floor((100 * done) / total)}%`;
