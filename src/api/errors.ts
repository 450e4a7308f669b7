import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { StorageError } from '../engine/errors.ts';
import { retryAfterSeconds } from '../engine/limits.ts';
import type { FailureCode, RejectionCode } from '../engine/types.ts';

/** Codes only the API answers with: it refuses the request before any command reaches the engine. */
type ApiCode =
  | 'validation_failed'
  | 'idempotency_key_required'
  | 'not_found'
  | 'product_exists'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'request_timeout'
  | 'headers_too_large';

/**
 * Every stable error code of docs/API.md, and its HTTP status. The only such table. `satisfies`
 * fails when an engine code has no status here, and when a code is neither the engine's nor the API's.
 */
const statusOf = {
  validation_failed: 400,
  idempotency_key_required: 400,
  product_not_found: 404,
  reservation_not_found: 404,
  not_found: 404,
  product_exists: 409,
  insufficient_stock: 409,
  stock_limit_exceeded: 409,
  reservation_cancelled: 409,
  reservation_expired: 409,
  reservation_purchased: 409,
  reservation_lifetime_exceeded: 409,
  quantity_exceeds_reservation: 409,
  request_timeout: 408,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  headers_too_large: 431,
  internal_error: 500,
  storage_unavailable: 503,
  overloaded: 503,
} as const satisfies Record<RejectionCode | FailureCode | ApiCode, number>;

export type ErrorCode = keyof typeof statusOf;
export type ProblemStatus = (typeof statusOf)[ErrorCode];

/** Every code, in the order of the table above: the enum of the Problem schema. */
export const errorCodes = Object.keys(statusOf) as ErrorCode[];

/** The codes answered with `status`, for the descriptions of /openapi.json. */
export function codesOfStatus(status: ProblemStatus): ErrorCode[] {
  return errorCodes.filter((code) => statusOf[code] === status);
}

export function statusOfCode(code: ErrorCode): ProblemStatus {
  return statusOf[code];
}

const titleOf: Record<ErrorCode, string> = {
  validation_failed: 'The request is not valid',
  idempotency_key_required: 'An Idempotency-Key header is required',
  product_not_found: 'No such product',
  reservation_not_found: 'No such reservation',
  not_found: 'No such resource',
  product_exists: 'A different product with this SKU exists',
  insufficient_stock: 'Not enough stock',
  stock_limit_exceeded: 'Stock would exceed its limit',
  reservation_cancelled: 'The reservation is cancelled',
  reservation_expired: 'The reservation has expired',
  reservation_purchased: 'The reservation is purchased',
  reservation_lifetime_exceeded: 'The reservation is at its lifetime cap',
  quantity_exceeds_reservation: 'More than the line holds was asked for',
  request_timeout: 'The request did not arrive in time',
  payload_too_large: 'The request body is too large',
  unsupported_media_type: 'The request body must be JSON',
  idempotency_key_reused: 'The Idempotency-Key was used for a different request',
  headers_too_large: 'The request headers are too large',
  internal_error: 'Internal error',
  storage_unavailable: 'Storage is unavailable; nothing was acknowledged, retry with the same Idempotency-Key',
  overloaded: 'Too many requests are waiting; nothing was done, retry later',
};

/** A refusal by the API or the engine, rendered as problem+json by the one error handler. */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
  ) {
    super(detail);
  }
}

export function problem(code: ErrorCode, detail: string, request?: FastifyRequest) {
  return {
    type: `https://secventory.dev/problems/${code.replaceAll('_', '-')}`,
    title: titleOf[code],
    status: statusOf[code],
    code,
    detail,
    // The request id travels in the x-request-id header, not here: a replayed answer must be
    // byte-for-byte the stored one.
    ...(request === undefined ? {} : { instance: request.url.split('?')[0] }),
  };
}

/**
 * A problem with the standard members, plus `extensions` where a code carries more: the short
 * lines of a refused cart (`lines`), the unknown SKUs of one (`unknownSkus`).
 */
export function sendProblem(
  reply: FastifyReply,
  code: ErrorCode,
  detail: string,
  extensions: Record<string, unknown> = {},
): FastifyReply {
  const status = statusOf[code];
  if (status === 503) reply.header('retry-after', String(retryAfterSeconds));
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ ...problem(code, detail, reply.request), ...extensions });
}

type SchemaError = NonNullable<FastifyError['validation']>[number];

/** The header schemas check one header, Idempotency-Key, and its refusals keep their own code. */
function isIdempotencyKeyError(v: SchemaError): boolean {
  return v.instancePath === '/idempotency-key' || v.params.missingProperty === 'idempotency-key';
}

/** A refusal by a route schema: which part of the request, which field, why. */
function codeOfValidationError(context: string, errors: readonly SchemaError[]): { code: ErrorCode; detail: string } {
  if (context === 'headers' && errors.every(isIdempotencyKeyError)) {
    const missing = errors.some((v) => v.keyword === 'required');
    const detail = missing
      ? 'send an Idempotency-Key header (1-255 printable ASCII characters)'
      : 'the Idempotency-Key header must be 1-255 printable ASCII characters';
    return { code: 'idempotency_key_required', detail };
  }
  const fields = errors.map((v) => `${v.instancePath || '/'} ${v.message}`).join('; ');
  return { code: 'validation_failed', detail: `${context} ${fields}` };
}

/** Fastify's own errors, by their stable FST_ codes. */
function codeOfFrameworkError(error: FastifyError): { code: ErrorCode; detail: string } {
  if (error.validation !== undefined) {
    return codeOfValidationError(error.validationContext ?? 'request', error.validation);
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'payload_too_large', detail: error.message };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { code: 'unsupported_media_type', detail: 'send the body as application/json' };
    default:
      if (error.statusCode === 413) return { code: 'payload_too_large', detail: error.message };
      if (error.statusCode === 415)
        return { code: 'unsupported_media_type', detail: 'send the body as application/json' };
      if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
        return { code: 'validation_failed', detail: error.message };
      }
      return { code: 'internal_error', detail: 'the server failed; nothing about the failure is shown here' };
  }
}

/** Installs the problem+json error and not-found handlers on `app`. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof ApiError) return sendProblem(reply, error.code, error.detail);
    if (error instanceof StorageError) {
      request.log.warn({ reason: error.message, sqlState: error.sqlState }, 'storage unavailable');
      return sendProblem(reply, 'storage_unavailable', 'the database did not answer; retry later');
    }
    const { code, detail } = codeOfFrameworkError(error);
    // Stack traces and SQL go to the log, never to the client.
    if (code === 'internal_error') request.log.error({ err: error }, 'request failed');
    return sendProblem(reply, code, detail);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 'not_found', `no route for ${request.method} ${request.url.split('?')[0]}`),
  );
}
