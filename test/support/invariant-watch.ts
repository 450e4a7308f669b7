import type { EngineObserver } from '../../src/engine/observer.ts';

/**
 * Collects the engine's invariant violations so a test harness fails on them: in the service
 * they are counted and logged, in a test they are a failure even when every answer looked right.
 */
export class InvariantWatch implements EngineObserver {
  readonly violations: { sku: string; error: Error }[] = [];

  invariantViolated(sku: string, error: Error): void {
    this.violations.push({ sku, error });
  }

  /** Throws the first violation seen, naming how many there were. */
  assertNone(): void {
    const first = this.violations[0];
    if (first === undefined) return;
    throw new Error(
      `${this.violations.length} invariant violation(s); first on '${first.sku}': ${first.error.message}`,
      { cause: first.error },
    );
  }
}
