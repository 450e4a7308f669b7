import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

/**
 * The server a route plugin registers its routes on, with TypeBox as its type provider: a route's
 * schemas type its request and its reply, also when a helper of the plugin registers it.
 */
export type RouteApp = Parameters<FastifyPluginAsyncTypebox>[0];
