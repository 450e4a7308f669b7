import type { CartOp } from './decide-cart.ts';
import type { Command, CommandResult } from './types.ts';

export interface BatchCommittedEvent {
  readonly sku: string;
  readonly commands: number;
  readonly events: number;
  readonly commitMs: number;
}

/** One statement of the group committer: the single-product batches that waited together. */
export interface CommitStatementEvent {
  readonly batches: number;
  /** How long its longest-waiting batch waited before the statement was sent (ms). */
  readonly queuedMs: number;
  /**
   * From sending the statement to reading its answer (ms): the database's work and COMMIT, the
   * wire, and the time the answer waited for the event loop.
   */
  readonly roundTripMs: number;
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
  /**
   * Every operation of the cart coordinator (src/engine/cart.ts: a reservation of several
   * products, and any operation on one) ends here exactly once with its result, also when it was
   * refused before holding an actor. Its lines' products record no commandCompleted for it:
   * a cart operation is one operation, however many products it holds. `latencyMs` runs from its
   * arrival to its answer, the wait for its products' actors included.
   */
  cartCompleted?(op: CartOp, result: CommandResult, latencyMs: number): void;
  batchCommitted?(event: BatchCommittedEvent): void;
  commitStatement?(event: CommitStatementEvent): void;
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
