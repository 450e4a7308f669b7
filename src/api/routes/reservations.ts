import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ReadModel } from '../../engine/read-ports.ts';
import type { Registry } from '../../engine/registry.ts';
import { reservationView } from '../../engine/views.ts';
import { ApiError } from '../errors.ts';
import { idempotencyKey, refuseBody } from '../idempotency-key.ts';
import { sendResult } from '../results.ts';
import { IdempotencyHeaders, problemResponses, Reservation, ReservationParams } from '../schemas.ts';

export interface ReservationRoutesOptions {
  readonly registry: Registry;
  readonly readModel: ReadModel;
}

export const reservationRoutes: FastifyPluginAsyncTypebox<ReservationRoutesOptions> = async (app, { registry, readModel }) => {
  app.get('/reservations/:id', {
    schema: { summary: 'A reservation', tags: ['reservations'], params: ReservationParams, response: { 200: Reservation, ...problemResponses } },
  }, async (request) => {
    const id = request.params.id.toLowerCase();
    const reservation = await readModel.getReservation(id);
    if (reservation === null) throw new ApiError('reservation_not_found', `no reservation ${id}`);
    return reservationView(reservation);
  });

  for (const action of ['purchase', 'cancel'] as const) {
    app.post(`/reservations/:id/${action}`, {
      schema: {
        summary: action === 'purchase'
          ? 'Purchase a reservation (exactly once; purchasing it again answers the same 200)'
          : 'Cancel a reservation and return its stock (cancelling it again answers the same 200)',
        tags: ['reservations'],
        params: ReservationParams,
        headers: IdempotencyHeaders,
        response: { 200: Reservation, ...problemResponses },
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
