import type { CartOp } from '../../src/engine/decide-cart.ts';
import type { Command } from '../../src/engine/types.ts';

/**
 * A purchase (whole) or cancel command as the operation on its reservation that the routes send:
 * the registry decides which product's actor, or the cart lane, takes it.
 */
export function reservationOp(
  command: Extract<Command, { type: 'purchase' | 'cancel' | 'expire' }>,
): Exclude<CartOp, { type: 'reserve' }> {
  switch (command.type) {
    case 'purchase': {
      if (command.quantity !== undefined) throw new Error('a partial purchase names its lines');
      const { reservationId, idempotencyKey, requestId } = command;
      return { type: 'purchase', reservationId, lines: null, idempotencyKey, requestId };
    }
    case 'cancel':
    case 'expire':
      return command;
  }
}
