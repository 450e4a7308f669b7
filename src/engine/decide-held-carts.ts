import type { Clock } from './clock.ts';
import type { Base } from './decide-batch.ts';
import { decideCartBatch, type CartBatchDecision, type CartToDecide } from './decide-cart-batch.ts';
import type { HeldSet } from './held-set.ts';
import type { Store } from './store.ts';
import type { ProductState, Reservation } from './types.ts';
import type { WaitingCart } from './waiting-cart.ts';

export interface HeldDecision {
  /** The committed state of every held product (null when absent): what a commit is applied to. */
  readonly states: ReadonlyMap<string, ProductState | null>;
  readonly decision: CartBatchDecision;
}

/**
 * Decides a batch of waiting carts with their products held: on each product's committed state
 * (loaded where memory does not hold it) or, for a product that a batch still committing wrote, on
 * the state that batch leaves (`ahead`); with the lines of each existing reservation from memory
 * when it holds all of them, else from the database.
 */
export async function decideHeldCarts(
  deps: { readonly store: Store; readonly clock: Clock },
  batch: readonly WaitingCart[],
  held: HeldSet,
  ahead: ReadonlyMap<string, Base> = new Map(),
): Promise<HeldDecision> {
  const states = await held.states(skusOf(batch));
  const bases = new Map<string, Base | null>();
  for (const [sku, state] of states) {
    bases.set(sku, state === null ? null : (ahead.get(sku) ?? held.get(sku).base(state)));
  }
  const carts = await Promise.all(
    batch.map(async ({ op, skus, key }): Promise<CartToDecide> => {
      if (op.type === 'reserve') return { op, skus, key, existing: [] };
      const existing =
        linesInMemory(op.reservationId, skus, bases) ?? (await deps.store.findReservationLines(op.reservationId));
      return { op, skus, key, existing };
    }),
  );
  return { states, decision: decideCartBatch(bases, carts, deps.clock.nowMs()) };
}

/** The lines of a reservation on `skus`, if memory holds every one of them. */
function linesInMemory(id: string, skus: readonly string[], bases: ReadonlyMap<string, Base | null>) {
  const lines: Reservation[] = [];
  for (const sku of skus) {
    const line = bases.get(sku)?.lookup(id);
    if (line === undefined || line.lines !== skus.length) return null;
    lines.push(line);
  }
  return lines.sort((a, b) => a.line - b.line);
}

/** The products a batch names, each once, in SKU order. */
export function skusOf(batch: readonly WaitingCart[]): string[] {
  return [...new Set(batch.flatMap((w) => w.skus))].sort();
}
