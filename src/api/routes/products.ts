import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ttlSecondsDefault } from '../../engine/limits.ts';
import type { Registry } from '../../engine/registry.ts';
import { ApiError } from '../errors.ts';
import { idempotencyKey } from '../idempotency-key.ts';
import { sendResult } from '../results.ts';
import { AdjustBody, CreateProductBody, IdempotencyHeaders, Inventory, Product, problemResponses, Reservation, ReserveBody, SkuParams } from '../schemas.ts';

export interface ProductRoutesOptions {
  readonly registry: Registry;
}

const iso = (ms: number) => new Date(ms).toISOString();

export const productRoutes: FastifyPluginAsyncTypebox<ProductRoutesOptions> = async (app, { registry }) => {
  app.post('/products', {
    schema: {
      summary: 'Create a product (idempotent: the same sku, name and stock again answers 200)',
      tags: ['products'],
      headers: IdempotencyHeaders,
      body: CreateProductBody,
      response: { 200: Product, 201: Product, ...problemResponses },
    },
  }, async (request, reply) => {
    idempotencyKey(request, false);
    const { sku, name, stock } = request.body;
    const result = await registry.createProduct(sku, name, stock, request.id);
    const p = result.product;
    if (result.type === 'exists' && (p.name !== name || p.initialStock !== stock)) {
      throw new ApiError('product_exists', `product ${sku} exists with a different name or stock`);
    }
    return reply.code(result.type === 'created' ? 201 : 200).send({
      sku: p.sku,
      name: p.name,
      createdAt: iso(p.createdAtMs),
      inventory: {
        sku: p.sku,
        total: p.counters.total,
        reserved: p.counters.reserved,
        purchased: p.counters.purchased,
        available: p.counters.total - p.counters.reserved - p.counters.purchased,
        activeReservations: p.active.size,
        version: p.counters.version,
      },
    });
  });

  app.get('/products/:sku', {
    schema: { summary: 'A product and its inventory', tags: ['products'], params: SkuParams, response: { 200: Product, ...problemResponses } },
  }, async (request) => {
    const product = await registry.product(request.params.sku);
    if (product === null) throw new ApiError('product_not_found', `no product ${request.params.sku}`);
    return { sku: product.sku, name: product.name, createdAt: iso(product.createdAtMs), inventory: product.inventory };
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
