/**
 * What the proof started and must undo, undone last-in first-out: the app before its PostgreSQL,
 * PostgreSQL before its directory. Runs once, whether the proof passed, failed, threw or was
 * interrupted, and each step is bounded so that one stuck step cannot keep the others from running.
 */
export class Cleanup {
  private readonly steps: { what: string; run: () => Promise<void> }[] = [];
  private running: Promise<string[]> | undefined;

  /** Once cleaning up has begun, nothing new should start: what it would start is being undone. */
  get started(): boolean {
    return this.running !== undefined;
  }

  add(what: string, run: () => Promise<void>): void {
    this.steps.push({ what, run });
  }

  /** Runs every step; returns what failed (a proof that cannot clean up says so, it does not hide it). */
  runAll(stepMsMax = 15_000): Promise<string[]> {
    this.running ??= (async () => {
      const failed: string[] = [];
      for (const step of this.steps.splice(0).reverse()) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`did not finish in ${stepMsMax} ms`)), stepMsMax);
        });
        try {
          await Promise.race([step.run(), timeout]);
        } catch (error) {
          failed.push(`${step.what}: ${error instanceof Error ? error.message : String(error)}`);
        } finally {
          clearTimeout(timer);
        }
      }
      return failed;
    })();
    return this.running;
  }
}
