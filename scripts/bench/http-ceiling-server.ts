// The HTTP ceiling for `npm run bench -- --ceiling`: what one Node process on this machine can
// answer when a reservation costs nothing but its HTTP work. The same Fastify version, the same
// route with the same schemas (params, Idempotency-Key header, body, response serializer) and the
// x-request-id echo as the service, answering 201 with a reservation-shaped body at once: no
// engine, no database. The service's figures read as a share of this one, measured side by side.
import { randomUUID } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import { bodyBytesMax, ttlSecondsDefault } from '../../src/engine/limits.ts';
import { ajvOptions, requestIdOf } from '../../src/api/server.ts';
import { jsonResponse } from '../../src/api/responses.ts';
import {
  namedSchemas,
  NoQuery,
  ref,
  RequiredIdempotencyKey,
  Reservation,
  ReservationRequest,
  SkuParams,
} from '../../src/api/schemas.ts';

const app = Fastify({
  logger: false,
  bodyLimit: bodyBytesMax,
  requestIdHeader: false,
  genReqId: requestIdOf,
  ajv: ajvOptions,
}).withTypeProvider<TypeBoxTypeProvider>();

for (const schema of namedSchemas) app.addSchema(schema);

app.addHook('onRequest', (request, reply, done) => {
  reply.header('x-request-id', request.id);
  done();
});

app.post(
  '/products/:sku/reservations',
  {
    schema: {
      params: SkuParams,
      querystring: NoQuery,
      headers: RequiredIdempotencyKey,
      body: ref(ReservationRequest),
      response: { 201: jsonResponse(ref(Reservation), 'reserved') },
    },
  },
  async (request, reply) => {
    const nowMs = Date.now();
    const { quantity, ttlSeconds = ttlSecondsDefault } = request.body;
    return reply.code(201).send({
      id: randomUUID(),
      sku: request.params.sku,
      quantity,
      lines: [{ sku: request.params.sku, quantity }],
      status: 'active' as const,
      createdAt: new Date(nowMs).toISOString(),
      expiresAt: new Date(nowMs + ttlSeconds * 1000).toISOString(),
    });
  },
);

app.get('/health/ready', async () => ({ status: 'ready' }));

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
