import type { HeldProduct, ProductActor } from './product-actor.ts';

/**
 * Holds each actor in turn (in the given order), then runs `work` with all of them held. Callers
 * pass their actors in SKU order, the same everywhere, so two holders never wait for each other.
 */
export function holdAll<T>(
  actors: readonly ProductActor[],
  held: HeldProduct[],
  work: (held: readonly HeldProduct[]) => Promise<T>,
): Promise<T> {
  const [first, ...rest] = actors;
  if (first === undefined) return work(held);
  return first.hold((h) => holdAll(rest, [...held, h], work));
}
