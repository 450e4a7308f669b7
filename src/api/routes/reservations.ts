import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { cartLinesMax, quantityMax, skuPattern, ttlSecondsDefault } from '../../engine/limits.ts';
import type { ReadModel } from '../../engine/read-ports.ts';
import type { Registry } from '../../engine/registry.ts';
import { reservationView } from '../../engine/views.ts';
import { ApiError } from '../errors.ts';
import { idempotencyKey, refuseBody } from '../idempotency-key.ts';
import { sendResult } from '../results.ts';
import { CartBody, ExtendBody, IdempotencyHeaders, problemResponses, Reservation, ReservationParams } from '../schemas.ts';

export interface ReservationRoutesOptions {
  readonly registry: Registry;
  readonly readModel: ReadModel;
}

export const reservationRoutes: FastifyPluginAsyncTypebox<ReservationRoutesOptions> = async (app, { registry, readModel }) => {
  app.post('/reservations', {
    schema: {
      summary: 'Reserve several products at once, all or nothing (Idempotency-Key required, scoped to this route)',
      tags: ['reservations'],
      headers: IdempotencyHeaders,
      body: CartBody,
      response: { 201: Reservation, ...problemResponses },
    },
  }, async (request, reply) => {
    const key = idempotencyKey(request, true);
    const { lines, ttlSeconds = ttlSecondsDefault } = request.body;
    const skus = new Set(lines.map((l) => l.sku));
    if (skus.size !== lines.length) throw new ApiError('validation_failed', 'body /lines names a SKU more than once');
    const result = await registry.executeCart({ type: 'reserve', reservationId: randomUUID(), lines, ttlSeconds, idempotencyKey: key, requestId: request.id });
    return sendResult(reply, result);
  });

  app.get('/reservations/:id', {
    schema: { summary: 'A reservation', tags: ['reservations'], params: ReservationParams, response: { 200: Reservation, ...problemResponses } },
  }, async (request) => {
    const id = request.params.id.toLowerCase();
    const lines = await readModel.getReservationLines(id);
    if (lines.length === 0) throw new ApiError('reservation_not_found', `no reservation ${id}`);
    return reservationView(...lines);
  });

  app.post('/reservations/:id/purchase', {
    schema: {
      summary: 'Purchase a reservation: all of it (no body) or the lines named (the rest returns to available); exactly once',
      tags: ['reservations'],
      params: ReservationParams,
      headers: IdempotencyHeaders,
      response: { 200: Reservation, ...problemResponses },
    },
  }, async (request, reply) => {
    const lines = purchaseLines(request.body);
    const key = idempotencyKey(request, false);
    const id = request.params.id.toLowerCase();
    const result = await registry.executeReservationOp({ type: 'purchase', reservationId: id, lines, idempotencyKey: key, requestId: request.id });
    return sendResult(reply, result);
  });

  app.post('/reservations/:id/cancel', {
    schema: {
      summary: 'Cancel a reservation and return its stock (cancelling it again answers the same 200)',
      tags: ['reservations'],
      params: ReservationParams,
      headers: IdempotencyHeaders,
      response: { 200: Reservation, ...problemResponses },
    },
  }, async (request, reply) => {
    refuseBody(request);
    const key = idempotencyKey(request, false);
    const id = request.params.id.toLowerCase();
    const result = await registry.executeReservationOp({ type: 'cancel', reservationId: id, idempotencyKey: key, requestId: request.id });
    return sendResult(reply, result);
  });

  app.post('/reservations/:id/extend', {
    schema: {
      summary: 'Extend a reservation: expiresAt becomes now + ttlSeconds, never past its lifetime cap',
      tags: ['reservations'],
      params: ReservationParams,
      headers: IdempotencyHeaders,
      body: ExtendBody,
      response: { 200: Reservation, ...problemResponses },
    },
  }, async (request, reply) => {
    const key = idempotencyKey(request, false);
    const id = request.params.id.toLowerCase();
    const result = await registry.executeReservationOp({ type: 'extend', reservationId: id, ttlSeconds: request.body.ttlSeconds, idempotencyKey: key, requestId: request.id });
    return sendResult(reply, result);
  });

};

/**
 * The purchase's lines, or null for everything. The body is optional, so it is checked here rather
 * than by a route schema: `{ "lines": [{ "sku", "quantity" >= 1 }] }`, each SKU at most once.
 */
export function purchaseLines(body: unknown): { sku: string; quantity: number }[] | null {
  if (body === undefined || body === null) return null;
  if (!isRecord(body)) throw invalid('the body must be an object');
  const keys = Object.keys(body);
  if (keys.length === 0) return null;
  if (keys.some((k) => k !== 'lines')) throw invalid('body must NOT have additional properties');
  const lines = body.lines;
  if (!Array.isArray(lines) || lines.length < 1 || lines.length > cartLinesMax) throw invalid(`body /lines must hold 1..${cartLinesMax} lines`);
  const seen = new Set<string>();
  return lines.map((line: unknown, i) => {
    if (!isRecord(line) || Object.keys(line).some((k) => k !== 'sku' && k !== 'quantity')) throw invalid(`body /lines/${i} must be { sku, quantity }`);
    const { sku, quantity } = line;
    if (typeof sku !== 'string' || !skuRegExp.test(sku)) throw invalid(`body /lines/${i}/sku must be 1-64 of [A-Za-z0-9._:-]`);
    if (!Number.isSafeInteger(quantity) || (quantity as number) < 1 || (quantity as number) > quantityMax) {
      throw invalid(`body /lines/${i}/quantity must be an integer 1..${quantityMax}`);
    }
    if (seen.has(sku)) throw invalid('body /lines names a SKU more than once');
    seen.add(sku);
    return { sku, quantity: quantity as number };
  });
}

const skuRegExp = new RegExp(skuPattern);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(detail: string): ApiError {
  return new ApiError('validation_failed', detail);
}
