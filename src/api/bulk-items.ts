import type { FastifyRequest } from 'fastify';
import type { BulkProductItem } from '../engine/bulk-products.ts';
import { isStorableText } from '../engine/storable-text.ts';
import { ApiError } from './errors.ts';
import { NewProduct, ref } from './schemas.ts';

// The items of a bulk call as the engine takes them. POST /products/bulk checks each item on its
// own (an invalid item is that item's 400, the others go on); POST /stock-adjustments/bulk has
// its items checked with the body, and refuses the whole call when one is wrong.

/** One object for the process: Fastify compiles a validator once per route and schema object. */
const newProductSchema = ref(NewProduct);

interface SchemaError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly params: Record<string, unknown>;
}

/**
 * Each item checked as a NewProduct, with the same validator as every body (no coercion, the text
 * format), in the order of the request. A SKU named by an earlier item makes this item invalid.
 */
export function productItemsOf(request: FastifyRequest, sent: readonly Record<string, unknown>[]): BulkProductItem[] {
  const validate = request.compileValidationSchema(newProductSchema, 'body');
  const named = new Set<string>();
  return sent.map((item) => {
    const sku = typeof item.sku === 'string' ? item.sku : null;
    // Echoed in the results and stored with the key's record: only text PostgreSQL keeps as it is.
    const shown = sku !== null && isStorableText(sku) ? sku : null;
    const repeated = sku !== null && named.has(sku);
    if (sku !== null) named.add(sku);
    if (!validate(item)) {
      const errors = (validate.errors ?? []) as readonly SchemaError[];
      return { type: 'invalid', sku: shown, field: fieldOf(errors[0]) };
    }
    if (repeated) return { type: 'invalid', sku: shown, field: 'sku' };
    const { name, stock } = item as { name: string; stock: number };
    return { type: 'create', sku: sku!, name, stock };
  });
}

/** The field an item's first schema error is about: missing, unknown, or of a wrong value. */
function fieldOf(error: SchemaError | undefined): string {
  if (error === undefined) return '';
  const named = error.params.missingProperty ?? error.params.additionalProperty;
  if (typeof named === 'string') return named;
  return error.instancePath.split('/')[1] ?? '';
}

/** Refuses an adjustment naming a SKU an earlier one named, with both places in the body. */
export function refuseRepeatedItems(adjustments: readonly { sku: string }[]): void {
  const first = new Map<string, number>();
  adjustments.forEach(({ sku }, i) => {
    const earlier = first.get(sku);
    if (earlier !== undefined) {
      throw new ApiError('validation_failed', `body /adjustments/${i}/sku names the SKU of /adjustments/${earlier}`);
    }
    first.set(sku, i);
  });
}
