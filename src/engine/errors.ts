/** A broken invariant: a programming error. Never caught; tests fail loudly on it. */
export class InvariantViolation extends Error {
  override name = 'InvariantViolation';
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}

/**
 * Storage failed. `transient` errors (connection lost, timeout, database restarting) fail a whole
 * batch with storage_unavailable; others (a constraint refusing a write) make the actor retry the
 * batch's commands one by one so one poisoned command cannot sink the rest.
 */
export class StorageError extends Error {
  override name = 'StorageError';
  constructor(
    message: string,
    readonly transient: boolean,
    readonly sqlState: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
