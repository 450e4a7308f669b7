import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ttlSecondsDefault } from '../../engine/limits.ts';
import type { Registry } from '../../engine/registry.ts';
import { newReservationId } from '../../engine/reservation-id.ts';
import { isoOf } from '../../engine/time.ts';
import { ApiError } from '../errors.ts';
import { idempotencyKey } from '../idempotency-key.ts';
import { jsonResponse, problemResponses } from '../responses.ts';
import { sendResult } from '../results.ts';
import {
  Inventory,
  NewProduct,
  NoQuery,
  OptionalIdempotencyKey,
  Product,
  ref,
  RequiredIdempotencyKey,
  Reservation,
  ReservationRequest,
  SkuParams,
  StockAdjustment,
} from '../schemas.ts';
import type { RouteApp } from './route-app.ts';

export interface ProductRoutesOptions {
  readonly registry: Registry;
}

// One function per route; the order here is the order /openapi.json lists them in.
export const productRoutes: FastifyPluginAsyncTypebox<ProductRoutesOptions> = async (app, options) => {
  registerCreateProduct(app, options);
  registerGetProduct(app, options);
  registerGetInventory(app, options);
  registerAdjustStock(app, options);
  registerReserve(app, options);
};

function registerCreateProduct(app: RouteApp, { registry }: ProductRoutesOptions): void {
  app.post(
    '/products',
    {
      schema: {
        operationId: 'createProduct',
        summary: 'Create a product',
        description:
          'Creates a product with its stock and its first audit event, product_created. The same sku ' +
          'again with the same name and stock answers 200 with the product as it is now; with a different name or ' +
          'stock, 409 product_exists. With an Idempotency-Key (optional, scoped to the sku), a repeat with the same ' +
          'key and body replays the stored 201 with idempotent-replayed: true; the same key with another body is 422.',
        tags: ['products'],
        querystring: NoQuery,
        headers: OptionalIdempotencyKey,
        body: ref(NewProduct),
        response: {
          200: jsonResponse(ref(Product), 'it existed with this name and stock: as it is now', { replayable: true }),
          201: jsonResponse(ref(Product), 'created', { replayable: true }),
          ...problemResponses(409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const key = idempotencyKey(request, false);
      const { sku, name, stock } = request.body;
      const creation = await registry.createProduct(sku, name, stock, request.id, key);
      return sendResult(reply, creation.result);
    },
  );
}

function registerGetProduct(app: RouteApp, { registry }: ProductRoutesOptions): void {
  app.get(
    '/products/:sku',
    {
      schema: {
        operationId: 'getProduct',
        summary: 'A product and its inventory',
        description:
          "The product's name, creation time and real-time inventory; 404 product_not_found for an " + 'unknown sku.',
        tags: ['products'],
        params: SkuParams,
        querystring: NoQuery,
        response: { 200: jsonResponse(ref(Product), 'the product'), ...problemResponses(404) },
      },
    },
    async (request) => {
      const product = await registry.product(request.params.sku);
      if (product === null) throw new ApiError('product_not_found', `no product ${request.params.sku}`);
      return {
        sku: product.sku,
        name: product.name,
        createdAt: isoOf(product.createdAtMs),
        inventory: product.inventory,
      };
    },
  );
}

function registerGetInventory(app: RouteApp, { registry }: ProductRoutesOptions): void {
  app.get(
    '/products/:sku/inventory',
    {
      schema: {
        operationId: 'getInventory',
        summary: "Real-time inventory, read through the product's actor",
        description:
          "Read through the product's owner after its pending writes, also when another instance wrote last. " +
          'available = total - reserved - purchased, never below 0.',
        tags: ['products'],
        params: SkuParams,
        querystring: NoQuery,
        response: { 200: jsonResponse(ref(Inventory), 'the counters now'), ...problemResponses(404) },
      },
    },
    async (request) => {
      const product = await registry.product(request.params.sku);
      if (product === null) throw new ApiError('product_not_found', `no product ${request.params.sku}`);
      return product.inventory;
    },
  );
}

function registerAdjustStock(app: RouteApp, { registry }: ProductRoutesOptions): void {
  app.post(
    '/products/:sku/stock-adjustments',
    {
      schema: {
        operationId: 'adjustStock',
        summary: 'Add or remove stock (Idempotency-Key required)',
        description:
          'Changes total by a non-zero delta. A delta that would make total < reserved + purchased is 409 ' +
          'insufficient_stock; one that would take total above 2,147,483,647 is 409 stock_limit_exceeded. Both ' +
          'rejections change nothing but are audited, and are replayed for the same key.',
        tags: ['products'],
        params: SkuParams,
        querystring: NoQuery,
        headers: RequiredIdempotencyKey,
        body: ref(StockAdjustment),
        response: {
          200: jsonResponse(ref(Inventory), 'the counters after the change', { replayable: true }),
          ...problemResponses(404, 409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const key = idempotencyKey(request, true);
      const { delta, reason } = request.body;
      const result = await registry.execute(request.params.sku, {
        type: 'adjust',
        delta,
        reason,
        idempotencyKey: key,
        requestId: request.id,
      });
      return sendResult(reply, result);
    },
  );
}

function registerReserve(app: RouteApp, { registry }: ProductRoutesOptions): void {
  app.post(
    '/products/:sku/reservations',
    {
      schema: {
        operationId: 'reserve',
        summary: 'Reserve stock (Idempotency-Key required)',
        description:
          'Takes quantity out of available at once, for ttlSeconds (default 600) unless purchased. 409 ' +
          'insufficient_stock when available < quantity: nothing changes, the rejection is audited and replayed for ' +
          'the same key.',
        tags: ['reservations'],
        params: SkuParams,
        querystring: NoQuery,
        headers: RequiredIdempotencyKey,
        body: ref(ReservationRequest),
        response: {
          201: jsonResponse(ref(Reservation), 'reserved: status active', { replayable: true }),
          ...problemResponses(404, 409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const key = idempotencyKey(request, true);
      const { quantity, ttlSeconds = ttlSecondsDefault } = request.body;
      const result = await registry.execute(request.params.sku, {
        type: 'reserve',
        reservationId: newReservationId(),
        quantity,
        ttlSeconds,
        idempotencyKey: key,
        requestId: request.id,
      });
      return sendResult(reply, result);
    },
  );
}
