import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ttlSecondsDefault } from '../../engine/limits.ts';
import type { Registry } from '../../engine/registry.ts';
import { isoOf } from '../../engine/time.ts';
import { ApiError } from '../errors.ts';
import { idempotencyKey } from '../idempotency-key.ts';
import { sendResult } from '../results.ts';
import { AdjustBody, CreateProductBody, IdempotencyHeaders, Inventory, Product, problemResponses, Reservation, ReserveBody, SkuParams } from '../schemas.ts';

export interface ProductRoutesOptions {
  readonly registry: Registry;
}

export const productRoutes: FastifyPluginAsyncTypebox<ProductRoutesOptions> = async (app, { registry }) => {
  app.post('/products', {
    schema: {
      summary: 'Create a product (the same again answers 200; an Idempotency-Key replays the first answer)',
      tags: ['products'],
      headers: IdempotencyHeaders,
      body: CreateProductBody,
      response: { 200: Product, 201: Product, ...problemResponses },
    },
  }, async (request, reply) => {
    const key = idempotencyKey(request, false);
    const { sku, name, stock } = request.body;
    const creation = await registry.createProduct(sku, name, stock, request.id, key);
    return sendResult(reply, creation.result);
  });

  app.get('/products/:sku', {
    schema: { summary: 'A product and its inventory', tags: ['products'], params: SkuParams, response: { 200: Product, ...problemResponses } },
  }, async (request) => {
    const product = await registry.product(request.params.sku);
    if (product === null) throw new ApiError('product_not_found', `no product ${request.params.sku}`);
    return { sku: product.sku, name: product.name, createdAt: isoOf(product.createdAtMs), inventory: product.inventory };
  });

  app.get('/products/:sku/inventory', {
    schema: { summary: "Real-time inventory, read through the product's actor", tags: ['products'], params: SkuParams, response: { 200: Inventory, ...problemResponses } },
  }, async (request) => {
    const product = await registry.product(request.params.sku);
    if (product === null) throw new ApiError('product_not_found', `no product ${request.params.sku}`);
    return product.inventory;
  });

  app.post('/products/:sku/stock-adjustments', {
    schema: {
      summary: 'Add or remove stock (Idempotency-Key required)',
      tags: ['products'],
      params: SkuParams,
      headers: IdempotencyHeaders,
      body: AdjustBody,
      response: { 200: Inventory, ...problemResponses },
    },
  }, async (request, reply) => {
    const key = idempotencyKey(request, true);
    const { delta, reason } = request.body;
    const result = await registry.execute(request.params.sku, { type: 'adjust', delta, reason, idempotencyKey: key, requestId: request.id });
    return sendResult(reply, result);
  });

  app.post('/products/:sku/reservations', {
    schema: {
      summary: 'Reserve stock (Idempotency-Key required); expires after ttlSeconds unless purchased',
      tags: ['reservations'],
      params: SkuParams,
      headers: IdempotencyHeaders,
      body: ReserveBody,
      response: { 201: Reservation, ...problemResponses },
    },
  }, async (request, reply) => {
    const key = idempotencyKey(request, true);
    const { quantity, ttlSeconds = ttlSecondsDefault } = request.body;
    const result = await registry.execute(request.params.sku, {
      type: 'reserve',
      reservationId: randomUUID(),
      quantity,
      ttlSeconds,
      idempotencyKey: key,
      requestId: request.id,
    });
    return sendResult(reply, result);
  });
};
