import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ttlSecondsDefault } from '../../engine/limits.ts';
import type { ReadModel } from '../../engine/read-ports.ts';
import type { Registry } from '../../engine/registry.ts';
import { newReservationId } from '../../engine/reservation-id.ts';
import { reservationView } from '../../engine/views.ts';
import { ApiError } from '../errors.ts';
import { idempotencyKey, refuseBody } from '../idempotency-key.ts';
import { jsonResponse, problemResponses } from '../responses.ts';
import { sendResult } from '../results.ts';
import {
  CartRequest,
  ExtendRequest,
  NoQuery,
  OptionalIdempotencyKey,
  PurchaseRequest,
  ref,
  RequiredIdempotencyKey,
  Reservation,
  ReservationParams,
} from '../schemas.ts';
import type { RouteApp } from './route-app.ts';

export interface ReservationRoutesOptions {
  readonly registry: Registry;
  readonly readModel: ReadModel;
}

interface Line {
  readonly sku: string;
  readonly quantity: number;
}

/** A purchase takes no body, an empty one or {} (buy everything), or `{ lines }` (buy what is named). */
const PurchaseBody = Type.Union([Type.Null(), Type.Object({}, { additionalProperties: false }), ref(PurchaseRequest)]);

const writeProblems = problemResponses(404, 409, 413, 415, 422);

// One function per route; the order here is the order /openapi.json lists them in.
export const reservationRoutes: FastifyPluginAsyncTypebox<ReservationRoutesOptions> = async (app, options) => {
  registerReserveCart(app, options);
  registerGetReservation(app, options);
  registerPurchase(app, options);
  registerCancel(app, options);
  registerExtend(app, options);
};

function registerReserveCart(app: RouteApp, { registry }: ReservationRoutesOptions): void {
  app.post(
    '/reservations',
    {
      schema: {
        operationId: 'reserveCart',
        summary: 'Reserve several products at once, all or nothing (Idempotency-Key required)',
        description:
          'Every line is taken out of available in one atomic step. 409 insufficient_stock when any line is ' +
          'short: nothing is reserved, and `lines` lists every short line. 404 product_not_found names every unknown ' +
          'SKU in `unknownSkus`. The key is scoped to this route.',
        tags: ['reservations'],
        querystring: NoQuery,
        headers: RequiredIdempotencyKey,
        body: ref(CartRequest),
        response: {
          201: jsonResponse(ref(Reservation), 'reserved: status active', { replayable: true }),
          ...writeProblems,
        },
      },
    },
    async (request, reply) => {
      const key = idempotencyKey(request, true);
      const { lines, ttlSeconds = ttlSecondsDefault } = request.body;
      refuseRepeatedSkus(lines);
      const result = await registry.executeCart({
        type: 'reserve',
        reservationId: newReservationId(),
        lines,
        ttlSeconds,
        idempotencyKey: key,
        requestId: request.id,
      });
      return sendResult(reply, result);
    },
  );
}

function registerGetReservation(app: RouteApp, { readModel }: ReservationRoutesOptions): void {
  app.get(
    '/reservations/:id',
    {
      schema: {
        operationId: 'getReservation',
        summary: 'A reservation',
        description:
          'Read from the database: an active reservation whose expiresAt has passed is one the sweeper has ' +
          'not reached yet (within about a second); it can no longer be purchased.',
        tags: ['reservations'],
        params: ReservationParams,
        querystring: NoQuery,
        response: { 200: jsonResponse(ref(Reservation), 'the reservation'), ...problemResponses(404) },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      const lines = await readModel.getReservationLines(id);
      if (lines.length === 0) throw new ApiError('reservation_not_found', `no reservation ${id}`);
      return reservationView(...lines);
    },
  );
}

function registerPurchase(app: RouteApp, { registry }: ReservationRoutesOptions): void {
  app.post(
    '/reservations/:id/purchase',
    {
      schema: {
        operationId: 'purchaseReservation',
        summary: 'Purchase a reservation, whole or in part (exactly once)',
        description:
          "No body (or {}) buys every line whole. `{ lines }` buys up to each named line's quantity; what is " +
          'not bought returns to available in the same step. The same purchase again answers the same 200; another ' +
          'purchase of a purchased reservation is 409 reservation_purchased; more than a line holds is 409 ' +
          'quantity_exceeds_reservation; a SKU not in the reservation is 400.',
        tags: ['reservations'],
        params: ReservationParams,
        querystring: NoQuery,
        headers: OptionalIdempotencyKey,
        body: PurchaseBody,
        response: {
          200: jsonResponse(ref(Reservation), 'the reservation, purchased', { replayable: true }),
          ...writeProblems,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const lines = body !== null && body !== undefined && 'lines' in body ? body.lines : null;
      if (lines !== null) refuseRepeatedSkus(lines);
      const key = idempotencyKey(request, false);
      const id = request.params.id.toLowerCase();
      const result = await registry.executeReservationOp({
        type: 'purchase',
        reservationId: id,
        lines,
        idempotencyKey: key,
        requestId: request.id,
      });
      return sendResult(reply, result);
    },
  );
}

function registerCancel(app: RouteApp, { registry }: ReservationRoutesOptions): void {
  app.post(
    '/reservations/:id/cancel',
    {
      schema: {
        operationId: 'cancelReservation',
        summary: 'Cancel a reservation and return its stock, on every line at once',
        description:
          'Cancelling it again answers the same 200. A purchased reservation is 409 reservation_purchased; ' +
          'an expired one 409 reservation_expired. Takes no body: none, an empty one or {} (any other is 400).',
        tags: ['reservations'],
        params: ReservationParams,
        querystring: NoQuery,
        headers: OptionalIdempotencyKey,
        response: {
          200: jsonResponse(ref(Reservation), 'the reservation, cancelled', { replayable: true }),
          ...writeProblems,
        },
      },
    },
    async (request, reply) => {
      refuseBody(request);
      const key = idempotencyKey(request, false);
      const id = request.params.id.toLowerCase();
      const result = await registry.executeReservationOp({
        type: 'cancel',
        reservationId: id,
        idempotencyKey: key,
        requestId: request.id,
      });
      return sendResult(reply, result);
    },
  );
}

function registerExtend(app: RouteApp, { registry }: ReservationRoutesOptions): void {
  app.post(
    '/reservations/:id/extend',
    {
      schema: {
        operationId: 'extendReservation',
        summary: 'Extend a reservation: expiresAt becomes now + ttlSeconds, never past createdAt + 24 h',
        description:
          'A longer ask is shortened to the cap; a reservation already at it is 409 ' +
          'reservation_lifetime_exceeded. Expired, cancelled or purchased: their 409 codes.',
        tags: ['reservations'],
        params: ReservationParams,
        querystring: NoQuery,
        headers: OptionalIdempotencyKey,
        body: ref(ExtendRequest),
        response: {
          200: jsonResponse(ref(Reservation), 'the reservation, with its new expiry', { replayable: true }),
          ...writeProblems,
        },
      },
    },
    async (request, reply) => {
      const key = idempotencyKey(request, false);
      const id = request.params.id.toLowerCase();
      const { ttlSeconds } = request.body;
      const result = await registry.executeReservationOp({
        type: 'extend',
        reservationId: id,
        ttlSeconds,
        idempotencyKey: key,
        requestId: request.id,
      });
      return sendResult(reply, result);
    },
  );
}

/** Each SKU at most once in a cart or a purchase: a schema cannot say it of objects. */
function refuseRepeatedSkus(lines: readonly Line[]): void {
  if (new Set(lines.map((l) => l.sku)).size !== lines.length) {
    throw new ApiError('validation_failed', 'body /lines names a SKU more than once');
  }
}
