import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ReadModel } from '../../engine/read-ports.ts';
import { sendProblem } from '../errors.ts';
import { jsonResponse, problemResponses } from '../responses.ts';
import { Health, NoQuery, ref } from '../schemas.ts';

export interface HealthRoutesOptions {
  readonly readModel: ReadModel;
  readonly expectedMigrations: readonly string[];
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (
  app,
  { readModel, expectedMigrations },
) => {
  app.get(
    '/health/live',
    {
      schema: {
        operationId: 'getLiveness',
        summary: 'The process runs',
        description: 'Answers 200 while the process runs and accepts requests; it asks nothing of the database.',
        tags: ['operations'],
        querystring: NoQuery,
        response: { 200: jsonResponse(ref(Health), '{"status":"live"}'), ...problemResponses() },
      },
    },
    async () => ({ status: 'live' as const }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        operationId: 'getReadiness',
        summary: 'The database answers and every migration is applied',
        description:
          'Answers 200 when the database answers and every migration of this build is applied, else 503 ' +
          'storage_unavailable: take the instance out of rotation.',
        tags: ['operations'],
        querystring: NoQuery,
        response: { 200: jsonResponse(ref(Health), '{"status":"ready"}'), ...problemResponses() },
      },
    },
    async (_request, reply) => {
      if (await readModel.ready(expectedMigrations)) return { status: 'ready' as const };
      return sendProblem(reply, 'storage_unavailable', 'the database does not answer or is not migrated');
    },
  );
};
