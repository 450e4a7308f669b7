import type { Command, CommandResult } from './types.ts';

export interface BatchCommittedEvent {
  readonly sku: string;
  readonly commands: number;
  readonly events: number;
  readonly commitMs: number;
}

/**
 * Typed engine events. One adapter (src/api/metrics.ts) turns them into Prometheus metrics and
 * another into log lines; the engine itself imports neither.
 */
export interface EngineObserver {
  /**
   * Every command ends here exactly once with its result: decided, replayed, or failed - also
   * when it was refused before reaching an actor (latency 0) or its reservation was unknown.
   */
  commandCompleted?(sku: string, command: Command, result: CommandResult, latencyMs: number): void;
  batchCommitted?(event: BatchCommittedEvent): void;
  versionConflict?(sku: string): void;
  storageError?(sku: string, error: Error): void;
  /**
   * A broken invariant or another programming error: the commands involved answered
   * internal_error and the actor reloads from the database. Never only logged: metrics count it
   * and the test harnesses fail on it.
   */
  invariantViolated?(sku: string, error: Error): void;
  expiriesSwept?(count: number): void;
  actorActivated?(sku: string): void;
  actorPassivated?(sku: string): void;
}
