import { assert } from './errors.ts';
import type { HeldProduct } from './product-actor.ts';
import type { ProductState } from './types.ts';

/** The actors the cart lane holds, by SKU. */
export class HeldSet {
  private readonly bySku: ReadonlyMap<string, HeldProduct>;

  constructor(private readonly all: readonly HeldProduct[]) {
    assert(all.length > 0, 'a held set holds an actor');
    this.bySku = new Map(all.map((h) => [h.sku, h]));
  }

  /** The first in SKU order: named by the observer for what happens to the whole set. */
  get first(): HeldProduct {
    return this.all[0]!;
  }

  has(sku: string): boolean {
    return this.bySku.has(sku);
  }

  get(sku: string): HeldProduct {
    const held = this.bySku.get(sku);
    assert(held !== undefined, `the cart lane holds product ${sku}`);
    return held;
  }

  /** The committed state of each of `skus`, loaded where memory does not hold it; null when absent. */
  async states(skus: readonly string[]): Promise<Map<string, ProductState | null>> {
    const loaded = await Promise.all(skus.map((sku) => this.get(sku).state()));
    return new Map(skus.map((sku, i) => [sku, loaded[i]!]));
  }

  /** Whether anything else waits for one of these actors (its own commands, a read, another holder). */
  contended(): boolean {
    return this.all.some((h) => h.contended());
  }

  /** Memory of these products (of all, without `skus`) is no longer trusted: they reload. */
  drop(skus?: readonly string[]): void {
    for (const h of skus === undefined ? this.all : skus.map((sku) => this.get(sku))) h.drop();
  }
}
