import { createdView } from '../engine/product-creation.ts';
import { isoOf } from '../engine/time.ts';
import type { BulkItem } from '../engine/types.ts';
import { statusOfCode } from './errors.ts';

// The results of a bulk call as a client reads them (BulkProductResult, BulkAdjustmentResult):
// per item, the status the single route would have answered, its code, and its body. Rendered
// from the engine's items on every answer, so a replay is rendered from the stored items alike.

export function bulkResultOf(item: BulkItem) {
  switch (item.type) {
    case 'invalid':
      return { sku: item.sku, status: 400, code: 'validation_failed' as const, field: item.field };
    case 'created':
      return {
        sku: item.sku,
        status: 201,
        product: createdView(item.sku, item.name, item.stock, isoOf(item.createdAtMs)),
      };
    case 'product':
      return { sku: item.product.sku, status: 200, product: item.product };
    case 'inventory':
      return { sku: item.inventory.sku, status: 200, inventory: item.inventory };
    case 'refused':
      return { sku: item.sku, status: statusOfCode(item.code), code: item.code };
    default: {
      const unreachable: never = item;
      return unreachable;
    }
  }
}
