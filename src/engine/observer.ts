import type { Command, CommandResult, FailureCode } from './types.ts';

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
  commandCompleted?(sku: string, command: Command, result: CommandResult, latencyMs: number): void;
  batchCommitted?(event: BatchCommittedEvent): void;
  versionConflict?(sku: string): void;
  storageError?(sku: string, error: Error): void;
  /** A command answered with a failure that left no trace in the database (e.g. a 503). */
  commandFailed?(sku: string, command: Command, code: FailureCode, reason: string): void;
  expiriesSwept?(count: number): void;
  actorActivated?(sku: string): void;
  actorPassivated?(sku: string): void;
}
