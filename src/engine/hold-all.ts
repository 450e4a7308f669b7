import type { HeldProduct, ProductActor } from './product-actor.ts';

/**
 * Holds each actor in turn (in the given order), then runs `work` with all of them held: those in
 * `held` already, and each of `actors` appended to it as it is taken. Callers take actors in SKU
 * order, the one order every holder of several actors uses, so two holders never wait for each other.
 */
export function holdAll<T>(
  actors: readonly ProductActor[],
  held: HeldProduct[],
  work: (held: readonly HeldProduct[]) => Promise<T>,
): Promise<T> {
  // By index: a batch of carts holds a thousand actors, and copying the lists at every step would
  // cost a million copies.
  const step = (i: number): Promise<T> => {
    const actor = actors[i];
    if (actor === undefined) return work(held);
    return actor.hold((h) => {
      held.push(h);
      return step(i + 1);
    });
  };
  return step(0);
}
