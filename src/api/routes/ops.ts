import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { latencyBucketBoundsMs } from '../../engine/latency-histogram.ts';
import { actorsPageLimitDefault, actorsPageLimitMax, windowSeconds } from '../../engine/limits.ts';
import type { Registry } from '../../engine/registry.ts';
import { isoOf } from '../../engine/time.ts';
import type { Metrics } from '../metrics.ts';
import { jsonResponse, problemResponses, textResponse } from '../responses.ts';
import { NoQuery, ref } from '../schemas.ts';
import type { RouteApp } from './route-app.ts';

export interface OpsRoutesOptions {
  readonly metrics: Metrics;
  readonly registry: Registry;
}

const strict = { additionalProperties: false } as const;
const Count = Type.Integer({ minimum: 0 });
const Ms = Type.Number({ minimum: 0 });
const Rate = Type.Number({ minimum: 0, maximum: 1 });
const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339, UTC, with milliseconds' });

const WindowFigures = {
  operations: Count,
  rejected: Type.Integer({
    minimum: 0,
    description: 'refused by a business rule or as a client error (409, 404, 422)',
  }),
  errors: Type.Integer({ minimum: 0, description: 'failed by the service (503, 500)' }),
  reservations: Type.Integer({ minimum: 0, description: 'reserve commands answered' }),
  reservationLatencyMsP50: Ms,
  reservationLatencyMsP99: Ms,
};

const Second = Type.Object({ at: Timestamp, ...WindowFigures }, strict);

const Stats = Type.Object(
  {
    at: Timestamp,
    startedAt: Timestamp,
    reservations: Type.Object(
      {
        count: Count,
        latencyMsMean: Ms,
        latencyMsP99: Type.Number({
          minimum: 0,
          description: 'upper bound of the latency bucket holding the 99th percentile',
        }),
      },
      { ...strict, description: 'reserve commands since start; latency from mailbox to answer' },
    ),
    operations: Type.Object(
      {
        total: Count,
        ok: Count,
        rejected: Count,
        errors: Count,
        failureRate: Type.Number({
          minimum: 0,
          maximum: 1,
          description: 'errors / total: commands the service failed',
        }),
        rejectionRate: Rate,
      },
      { ...strict, description: 'every command since start' },
    ),
    lastMinute: Type.Object(
      {
        ...WindowFigures,
        operationsPerSecond: Type.Number({ minimum: 0 }),
        failureRate: Rate,
        rejectionRate: Rate,
      },
      { ...strict, description: `the last ${windowSeconds} s, the current second included` },
    ),
    activeReservations: Type.Union([Count, Type.Null()], {
      description: 'all instances, from the database, at most 1 s old; null while it does not answer',
    }),
    liveActors: Count,
    queueDepthTotal: Count,
    queueDepthMax: Count,
    perSecond: Type.Array(Second, {
      maxItems: windowSeconds,
      description: `the last ${windowSeconds} complete seconds, oldest first`,
    }),
  },
  { ...strict, $id: 'Stats' },
);

const ActorsQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: actorsPageLimitMax, default: actorsPageLimitDefault })),
  },
  strict,
);

const Actor = Type.Object(
  {
    sku: Type.String(),
    queueDepth: Count,
    commands: Type.Integer({ minimum: 0, description: 'commands answered since the actor was activated' }),
    batches: Count,
    meanBatchSize: Type.Number({ minimum: 0, description: 'commands / batches' }),
    latencyMsP99: Type.Number({
      minimum: 0,
      description: 'upper bound of the latency bucket holding the 99th percentile',
    }),
    lastActivity: Timestamp,
  },
  strict,
);

const Actors = Type.Object(
  {
    liveActors: Count,
    actors: Type.Array(Actor, {
      maxItems: actorsPageLimitMax,
      description: 'busiest first: deepest queue, then most commands',
    }),
  },
  { ...strict, $id: 'ActorPage' },
);

const share = (part: number, whole: number) => (whole === 0 ? 0 : part / whole);
const largestBoundMs = latencyBucketBoundsMs[latencyBucketBoundsMs.length - 1]!;
/**
 * The engine's p99 is Infinity past its largest bucket, and JSON has no Infinity: read it as that
 * bound, as Prometheus's histogram_quantile does.
 */
const finiteMs = (ms: number) => (Number.isFinite(ms) ? ms : largestBoundMs);

// Read once at start: the page and uPlot are a few tens of kilobytes and never change while
// the process runs. uPlot comes from node_modules because the machines are offline (no CDN).
const require = createRequire(import.meta.url);
const dashboardHtml = readFileSync(new URL('../dashboard.html', import.meta.url), 'utf8');
const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');

// One function per route; the order here is the order /openapi.json lists them in.
export const opsRoutes: FastifyPluginAsyncTypebox<OpsRoutesOptions> = async (app, options) => {
  // Named here, where they are used; @fastify/swagger lists them with the others.
  app.addSchema(Stats);
  app.addSchema(Actors);
  registerMetrics(app, options);
  registerStats(app, options);
  registerActors(app, options);
  registerDashboard(app);
};

function registerMetrics(app: RouteApp, { metrics }: OpsRoutesOptions): void {
  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'getMetrics',
        summary: 'Prometheus metrics (text exposition format)',
        description:
          'Counters, histograms and gauges of this instance, none with a per-SKU label ' + '(docs/API.md, Operations).',
        tags: ['operations'],
        querystring: NoQuery,
        response: { 200: textResponse('text/plain', 'Prometheus text exposition format 0.0.4'), ...problemResponses() },
      },
    },
    async (_request, reply) => {
      const text = await metrics.text();
      return reply.type(metrics.contentType).send(text);
    },
  );
}

function registerStats(app: RouteApp, { metrics, registry }: OpsRoutesOptions): void {
  app.get(
    '/stats',
    {
      schema: {
        operationId: 'getStats',
        summary: 'A summary for people: latency, failure rate, active reservations, actors, queues',
        description: 'Since start and over the last minute, with per-second figures; what /dashboard draws.',
        tags: ['operations'],
        querystring: NoQuery,
        response: { 200: jsonResponse(ref(Stats), 'the figures now'), ...problemResponses() },
      },
    },
    async () => {
      // Awaited first, so every engine figure below is read in one synchronous turn and they agree.
      const activeReservations = await metrics.activeReservations();
      const nowMs = Date.now();
      const since = metrics.sinceStart();
      const minute = metrics.recent.lastMinute(nowMs);
      const minuteSeconds = Math.min(windowSeconds, Math.max(1, (nowMs - since.startedAtMs) / 1000));
      // actorSummaries sorts every live actor; a dashboard asks once a second, so that is fine.
      const busiest = registry.actorSummaries(1)[0];
      return {
        at: isoOf(nowMs),
        startedAt: isoOf(since.startedAtMs),
        reservations: {
          count: since.reservations,
          latencyMsMean: since.reservationLatencyMsMean,
          latencyMsP99: since.reservationLatencyMsP99,
        },
        operations: {
          total: since.operations,
          ok: since.operations - since.rejected - since.errors,
          rejected: since.rejected,
          errors: since.errors,
          failureRate: share(since.errors, since.operations),
          rejectionRate: share(since.rejected, since.operations),
        },
        lastMinute: {
          ...minute,
          operationsPerSecond: minute.operations / minuteSeconds,
          failureRate: share(minute.errors, minute.operations),
          rejectionRate: share(minute.rejected, minute.operations),
        },
        activeReservations,
        liveActors: registry.liveActors,
        queueDepthTotal: registry.queueDepthTotal(),
        queueDepthMax: busiest?.queueDepth ?? 0,
        perSecond: metrics.recent.perSecond(nowMs).map(({ atMs, ...figures }) => ({ at: isoOf(atMs), ...figures })),
      };
    },
  );
}

function registerActors(app: RouteApp, { registry }: OpsRoutesOptions): void {
  app.get(
    '/actors',
    {
      schema: {
        operationId: 'listActors',
        summary: 'Per-actor figures, busiest first (a bounded page)',
        description: "This instance's live actors, deepest queue first, then most commands.",
        tags: ['operations'],
        querystring: ActorsQuery,
        response: { 200: jsonResponse(ref(Actors), 'the busiest actors'), ...problemResponses() },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? actorsPageLimitDefault;
      return {
        liveActors: registry.liveActors,
        actors: registry.actorSummaries(limit).map((a) => ({
          sku: a.sku,
          queueDepth: a.queueDepth,
          commands: a.commands,
          batches: a.batches,
          meanBatchSize: share(a.commands, a.batches),
          latencyMsP99: finiteMs(a.latencyMsP99),
          lastActivity: isoOf(a.lastActivityMs),
        })),
      };
    },
  );
}

/** The page and the uPlot files it loads; only the page is in /openapi.json. */
function registerDashboard(app: RouteApp): void {
  app.get(
    '/dashboard',
    {
      schema: {
        operationId: 'getDashboard',
        summary: 'A live dashboard page',
        description: 'An HTML page over /stats and /actors that refreshes every second.',
        tags: ['operations'],
        querystring: NoQuery,
        response: { 200: textResponse('text/html', 'the page'), ...problemResponses() },
      },
    },
    async (_request, reply) =>
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(dashboardHtml),
  );
  app.get('/dashboard/uplot.js', { schema: { hide: true, querystring: NoQuery } }, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(uplotJs),
  );
  app.get('/dashboard/uplot.css', { schema: { hide: true, querystring: NoQuery } }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(uplotCss),
  );
}
