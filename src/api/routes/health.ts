import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ReadModel } from '../../engine/read-ports.ts';
import { sendProblem } from '../errors.ts';
import { problemResponses } from '../schemas.ts';

export interface HealthRoutesOptions {
  readonly readModel: ReadModel;
  readonly expectedMigrations: readonly string[];
}

const Status = Type.Object({ status: Type.String() }, { additionalProperties: false });

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { readModel, expectedMigrations }) => {
  app.get('/health/live', { schema: { summary: 'The process runs', tags: ['operations'], response: { 200: Status } } }, async () => ({ status: 'live' }));

  app.get('/health/ready', {
    schema: { summary: 'The database answers and every migration is applied', tags: ['operations'], response: { 200: Status, 503: problemResponses[503] } },
  }, async (_request, reply) => {
    if (await readModel.ready(expectedMigrations)) return { status: 'ready' };
    return sendProblem(reply, 'storage_unavailable', 'the database does not answer or is not migrated');
  });
};
