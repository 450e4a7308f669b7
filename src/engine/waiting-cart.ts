import type { CartKey } from './decide-cart-batch.ts';
import type { CartOp } from './decide-cart.ts';
import type { CommandResult } from './types.ts';

/** A cart operation waiting for the cart lane, and how to answer it (once; later answers are ignored). */
export interface WaitingCart {
  readonly op: CartOp;
  /** Its products, sorted and distinct. */
  readonly skus: readonly string[];
  readonly key: CartKey | null;
  readonly resolve: (result: CommandResult) => void;
}

/** Answers every cart of a batch with the same failure. */
export function failEach(
  batch: readonly WaitingCart[],
  code: 'storage_unavailable' | 'internal_error' | 'overloaded',
  reason: string,
): void {
  for (const w of batch) w.resolve({ type: 'failed', code, reason });
}
