import type { FastifyRequest } from 'fastify';
import { idempotencyKeyPattern } from '../engine/limits.ts';
import { ApiError } from './errors.ts';

/**
 * The request's Idempotency-Key; refuses a missing one when `required`, and any malformed one.
 * The routes' header schemas (src/api/schemas.ts) refuse both before the handler runs; this
 * check keeps a route that forgot its header schema from passing a bad key to the engine.
 */
export function idempotencyKey(request: FastifyRequest, required: true): string;
export function idempotencyKey(request: FastifyRequest, required: false): string | null;
export function idempotencyKey(request: FastifyRequest, required: boolean): string | null {
  const value = request.headers['idempotency-key'];
  if (value === undefined) {
    if (required)
      throw new ApiError(
        'idempotency_key_required',
        'send an Idempotency-Key header (1-255 printable ASCII characters)',
      );
    return null;
  }
  if (typeof value !== 'string' || !idempotencyKeyPattern.test(value)) {
    throw new ApiError(
      'idempotency_key_required',
      'the Idempotency-Key header must be 1-255 printable ASCII characters',
    );
  }
  return value;
}

/** Purchase and cancel take no body; an empty JSON object is tolerated. */
export function refuseBody(request: FastifyRequest): void {
  const body = request.body;
  if (body === undefined || body === null) return;
  if (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0) return;
  throw new ApiError('validation_failed', 'this request takes no body');
}
