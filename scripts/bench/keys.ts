// Idempotency keys for load: every request its own, so no request is a replay of another.
import { randomBytes } from 'node:crypto';

/** A prefix no other run shares (the process and 48 random bits), so keys differ across runs too. */
export function runKeyPrefix(generator: string): string {
  return `${generator}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Keys `<prefix>-1`, `<prefix>-2`, ... */
export function keySequence(prefix: string): () => string {
  let sequence = 0;
  return () => `${prefix}-${++sequence}`;
}
