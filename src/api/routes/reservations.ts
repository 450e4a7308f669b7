import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ReadModel } from '../../engine/read-ports.ts';
import type { Registry } from '../../engine/registry.ts';
import { reservationView } from '../../engine/views.ts';
import { ApiError } from '../errors.ts';
import { idempotencyKey, refuseBody } from '../idempotency-key.ts';
import { jsonResponse, problemResponses } from '../responses.ts';
import { sendResult } from '../results.ts';
import { NoQuery, OptionalIdempotencyKey, ref, Reservation, ReservationParams } from '../schemas.ts';

export interface ReservationRoutesOptions {
  readonly registry: Registry;
  readonly readModel: ReadModel;
}

const actions = {
  purchase: {
    operationId: 'purchaseReservation',
    answer: 'the reservation, purchased',
    summary: 'Purchase a reservation (exactly once)',
    description: 'Purchasing it again answers the same 200 (no second deduction). A cancelled reservation is 409 '
      + 'reservation_cancelled; one whose expiresAt has passed is 409 reservation_expired, and is expired in that '
      + 'moment. Takes no body: none, an empty one or {} (any other is 400).',
  },
  cancel: {
    operationId: 'cancelReservation',
    answer: 'the reservation, cancelled',
    summary: 'Cancel a reservation and return its stock',
    description: 'Cancelling it again answers the same 200. A purchased reservation is 409 reservation_purchased; '
      + 'an expired one 409 reservation_expired. Takes no body: none, an empty one or {} (any other is 400).',
  },
} as const;

export const reservationRoutes: FastifyPluginAsyncTypebox<ReservationRoutesOptions> = async (app, { registry, readModel }) => {
  app.get('/reservations/:id', {
    schema: {
      operationId: 'getReservation',
      summary: 'A reservation',
      description: 'Read from the database: an active reservation whose expiresAt has passed is one the sweeper has '
        + 'not reached yet (within about a second); it can no longer be purchased.',
      tags: ['reservations'],
      params: ReservationParams,
      querystring: NoQuery,
      response: { 200: jsonResponse(ref(Reservation), 'the reservation'), ...problemResponses(404) },
    },
  }, async (request) => {
    const id = request.params.id.toLowerCase();
    const reservation = await readModel.getReservation(id);
    if (reservation === null) throw new ApiError('reservation_not_found', `no reservation ${id}`);
    return reservationView(reservation);
  });

  for (const action of ['purchase', 'cancel'] as const) {
    app.post(`/reservations/:id/${action}`, {
      schema: {
        operationId: actions[action].operationId,
        summary: actions[action].summary,
        description: actions[action].description,
        tags: ['reservations'],
        params: ReservationParams,
        querystring: NoQuery,
        headers: OptionalIdempotencyKey,
        response: {
          200: jsonResponse(ref(Reservation), actions[action].answer, { replayable: true }),
          ...problemResponses(404, 409, 413, 415, 422),
        },
      },
    }, async (request, reply) => {
      refuseBody(request);
      const key = idempotencyKey(request, false);
      const id = request.params.id.toLowerCase();
      const result = await registry.executeOnReservation(id, { type: action, reservationId: id, idempotencyKey: key, requestId: request.id });
      return sendResult(reply, result);
    });
  }
};
