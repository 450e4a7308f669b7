import { randomUUID } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import {
  bodyBytesMax,
  eventLoopDelayMsMax,
  heapUsedBytesMax,
  keepAliveTimeoutMs,
  requestIdPattern,
  requestTimeoutMs,
} from '../engine/limits.ts';
import type { EventLog, ReadModel } from '../engine/read-ports.ts';
import type { Registry } from '../engine/registry.ts';
import underPressure from '@fastify/under-pressure';
import { answerClientError } from './client-errors.ts';
import { ApiError, installErrorHandlers, sendProblem } from './errors.ts';
import { installEventLoopShedding } from './load-shedding.ts';
import type { Metrics } from './metrics.ts';
import { registerOpenApi } from './openapi.ts';
import { installQueryIntegers } from './query-integers.ts';
import { bulkRoutes } from './routes/bulk.ts';
import { EventStreams } from './event-streams.ts';
import { eventStreamRoutes } from './routes/event-stream.ts';
import { eventRoutes } from './routes/events.ts';
import { healthRoutes } from './routes/health.ts';
import { opsRoutes } from './routes/ops.ts';
import { productRoutes } from './routes/products.ts';
import { reservationRoutes } from './routes/reservations.ts';
import { namedSchemas } from './schemas.ts';
import { ajvFormats } from './text.ts';

export interface ServerDeps {
  readonly registry: Registry;
  readonly readModel: ReadModel;
  readonly eventLog: EventLog;
  readonly expectedMigrations: readonly string[];
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** GET /events/stream: open streams at most, and the quiet time after which a comment is sent. */
  readonly eventStreams: { readonly streamsMax: number; readonly heartbeatMs: number };
  /** Called on the new server before any hook or route is added: tests install their checks here. */
  readonly configure?: (app: FastifyInstance) => void;
}

/** A client's x-request-id when it is printable and not too long; otherwise one of ours. */
export function requestIdOf(req: { headers: Record<string, string | string[] | undefined> }): string {
  const sent = req.headers['x-request-id'];
  return typeof sent === 'string' && requestIdPattern.test(sent) ? sent : randomUUID();
}

/**
 * docs/API.md: "1" is not 1, and unknown fields are refused, not silently dropped. `formats` defines
 * Text()'s format: strings that PostgreSQL would not store as they were sent are refused.
 */
export const ajvOptions = {
  customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, formats: ajvFormats },
};

/** Builds the HTTP API over an engine and its read ports; it knows nothing of SQL. */
export async function buildServer(deps: ServerDeps) {
  // Typed as Fastify's logger, not pino's, so the server is a plain FastifyInstance to its helpers.
  const logger: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    loggerInstance: logger,
    // Per-request log lines would cost more than the requests; failures are logged where they happen.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: bodyBytesMax,
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    // Requests that arrive while the server closes are answered by refuseWhileClosing's hook
    // instead, as problem+json like every other 503.
    return503OnClosing: false,
    // What Node's HTTP parser refuses (a NUL in a header, oversized headers) is problem+json too.
    clientErrorHandler: answerClientError,
    requestIdHeader: false,
    genReqId: requestIdOf,
    // Errors Fastify meets before routing (a malformed URL, a path parameter over 100 characters)
    // are answered like every other refusal: problem+json with a stable code.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      const detail =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? 'a path parameter is longer than any valid SKU or id'
          : 'the URL is malformed';
      void sendProblem(reply, 'validation_failed', detail);
    },
    ajv: ajvOptions,
  }).withTypeProvider<TypeBoxTypeProvider>();

  deps.configure?.(app);

  // Callback-style hooks: an async hook costs a promise on every request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });

  refuseWhileClosing(app);
  acceptJsonBodiesOnly(app);
  installErrorHandlers(app);

  // Process-level load shedding: when the event loop lags or the heap fills, refuse new work
  // with 503 overloaded at once, so the work already accepted keeps a bounded latency.
  installEventLoopShedding(app, eventLoopDelayMsMax);
  await app.register(underPressure, {
    maxHeapUsedBytes: heapUsedBytesMax,
    sampleInterval: 250,
    pressureHandler: (_request, reply, type, value) => {
      void sendProblem(
        reply,
        'overloaded',
        `the server is under pressure (${type}: ${Math.round(value ?? 0)}); nothing was done`,
      );
    },
  });

  for (const schema of namedSchemas) app.addSchema(schema);
  installQueryIntegers(app);
  await registerOpenApi(app);

  await app.register(healthRoutes, { readModel: deps.readModel, expectedMigrations: deps.expectedMigrations });
  await app.register(productRoutes, { registry: deps.registry });
  await app.register(bulkRoutes, { registry: deps.registry });
  await app.register(opsRoutes, { metrics: deps.metrics, registry: deps.registry });
  await app.register(reservationRoutes, { registry: deps.registry, readModel: deps.readModel });
  await app.register(eventRoutes, { eventLog: deps.eventLog });
  await app.register(eventStreamRoutes, { streams: eventStreams(app, deps) });
  return app;
}

/**
 * The event streams of this server, ended first when it closes: an open stream is an answer in
 * progress, and the server's close would wait for it (bounded: eventStreamEndGraceMs).
 */
function eventStreams(app: FastifyInstance, deps: ServerDeps): EventStreams {
  const streams = new EventStreams({
    eventLog: deps.eventLog,
    ...deps.eventStreams,
    observer: deps.metrics,
    onStorageError: (error) =>
      app.log.warn(
        { reason: error.message, sqlState: error.sqlState },
        'event streams: the database does not answer; streams stay open and polls retry',
      ),
    onRecovered: () => app.log.info('event streams: the database answers again'),
    onDefect: (error) => app.log.error({ err: error }, 'event stream failed'),
  });
  deps.metrics.watchStreams(streams);
  app.addHook('preClose', () => streams.close());
  return streams;
}

/**
 * From the moment the server starts closing, new requests on open connections are refused at
 * once (nothing was done; the client retries, on another instance if there is one), and the
 * connection is closed after the answer.
 */
function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) return done();
    const detail = 'the server is shutting down; nothing was done';
    void sendProblem(reply.header('connection', 'close'), 'overloaded', detail);
  });
}

/** Fastify's JSON parser answers through its callback; its declared type also admits a promise. */
type CallbackParser = (
  request: FastifyRequest,
  body: string,
  done: (error: Error | null, value?: unknown) => void,
) => void;

/**
 * Only JSON is accepted; anything else is 415 unsupported_media_type. JSON bodies go through
 * Fastify's parser (it refuses __proto__ and constructor.prototype), but an empty body is no body,
 * so a bare POST to /purchase with a JSON content type is fine.
 */
function acceptJsonBodiesOnly(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error') as CallbackParser;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: bodyBytesMax },
    (request, body, done) => {
      if (body === '' || (typeof body === 'string' && body.trim() === '')) return done(null, undefined);
      parseJson(request, body as string, (error, value) => {
        if (error) return done(new ApiError('validation_failed', 'the body is not valid JSON'), undefined);
        done(null, value);
      });
    },
  );
}
