import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { bulkAdjustmentsScope } from '../../engine/bulk-adjustments.ts';
import { bulkProductsScope } from '../../engine/bulk-products.ts';
import { bulkFingerprintOf } from '../../engine/fingerprint.ts';
import { bulkBodyBytesMax, bulkItemsMax } from '../../engine/limits.ts';
import type { Registry } from '../../engine/registry.ts';
import { productItemsOf, refuseRepeatedItems } from '../bulk-items.ts';
import { idempotencyKey } from '../idempotency-key.ts';
import { jsonResponse, problemResponses } from '../responses.ts';
import { sendResult } from '../results.ts';
import {
  BulkAdjustmentResults,
  BulkAdjustmentsRequest,
  BulkProductResults,
  BulkProductsRequest,
  NoQuery,
  OptionalIdempotencyKey,
  ref,
  RequiredIdempotencyKey,
} from '../schemas.ts';
import type { RouteApp } from './route-app.ts';

export interface BulkRoutesOptions {
  readonly registry: Registry;
}

// The bulk routes: many products, or many stock adjustments, in one call. Their bodies may be
// up to bulkBodyBytesMax; every other route keeps bodyBytesMax.
export const bulkRoutes: FastifyPluginAsyncTypebox<BulkRoutesOptions> = async (app, options) => {
  registerImportProducts(app, options);
  registerAdjustInBulk(app, options);
};

function registerImportProducts(app: RouteApp, { registry }: BulkRoutesOptions): void {
  app.post(
    '/products/bulk',
    {
      bodyLimit: bulkBodyBytesMax,
      schema: {
        operationId: 'createProducts',
        summary: `Create up to ${bulkItemsMax} products at once`,
        description:
          'Each item as POST /products would answer it: 201 created, 200 the same again, 409 product_exists; an ' +
          'invalid item (or a SKU named by an earlier item) is 400 validation_failed naming its `field`, and the ' +
          'other items go on. The answer is 200 with one result per item, in the order of the request. With an ' +
          'Idempotency-Key (optional, scoped to this route) a repeat replays the stored results.',
        tags: ['products'],
        querystring: NoQuery,
        headers: OptionalIdempotencyKey,
        body: ref(BulkProductsRequest),
        response: {
          200: jsonResponse(ref(BulkProductResults), 'one result per item', { replayable: true }),
          ...problemResponses(413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const key = idempotencyKey(request, false);
      const sent = request.body.products;
      const result = await registry.importProducts({
        items: productItemsOf(request, sent),
        fingerprint: bulkFingerprintOf(bulkProductsScope, sent),
        key,
        requestId: request.id,
      });
      return sendResult(reply, result);
    },
  );
}

function registerAdjustInBulk(app: RouteApp, { registry }: BulkRoutesOptions): void {
  app.post(
    '/stock-adjustments/bulk',
    {
      bodyLimit: bulkBodyBytesMax,
      schema: {
        operationId: 'adjustStockInBulk',
        summary: `Add or remove stock of up to ${bulkItemsMax} products at once (Idempotency-Key required)`,
        description:
          'Each item as POST /products/{sku}/stock-adjustments would answer it, one result per item (200). A body ' +
          'that breaks the schema, or names a SKU twice, is 400 naming the item, and nothing is applied. With ' +
          '`"atomic": true` every item applies or none does: a refused item refuses the call (409 with `items`, ' +
          'audited on every product named), an unknown SKU is 404 with `unknownSkus`. The key is scoped to this route.',
        tags: ['products'],
        querystring: NoQuery,
        headers: RequiredIdempotencyKey,
        body: ref(BulkAdjustmentsRequest),
        response: {
          200: jsonResponse(ref(BulkAdjustmentResults), 'one result per item', { replayable: true }),
          ...problemResponses(404, 409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const key = idempotencyKey(request, true);
      const { adjustments, atomic = false } = request.body;
      refuseRepeatedItems(adjustments);
      const result = await registry.adjustInBulk({
        adjustments,
        atomic,
        key,
        fingerprint: bulkFingerprintOf(bulkAdjustmentsScope, { atomic, adjustments }),
        requestId: request.id,
      });
      return sendResult(reply, result);
    },
  );
}
