import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from 'typebox';
import { eventPageLimitDefault } from '../../engine/limits.ts';
import type { EventLog, EventPage as StoredPage, LoggedEvent } from '../../engine/read-ports.ts';
import { ApiError } from '../errors.ts';
import { eventJson } from '../event-json.ts';
import { jsonResponse, problemResponses } from '../responses.ts';
import { EventPage, EventPageQuery, ref, ReservationParams, SkuParams } from '../schemas.ts';
import type { RouteApp } from './route-app.ts';

export interface EventRoutesOptions {
  readonly eventLog: EventLog;
}

type PageQuery = Static<typeof EventPageQuery>;

/** The schema checked the range; the default applies when the client names no limit. */
const limitOf = (query: PageQuery) => query.limit ?? eventPageLimitDefault;
/** The event log takes cursors as decimal text (bigint in PostgreSQL); 0 means "from the start". */
const afterOf = (query: PageQuery) => String(query.after ?? 0);

function pageJson(page: StoredPage, cursorOf: (e: LoggedEvent) => number) {
  const last = page.events.at(-1);
  return { events: page.events.map(eventJson), next: page.more && last !== undefined ? cursorOf(last) : null };
}

const bySeq = (e: LoggedEvent) => e.seq;
const byPosition = (e: LoggedEvent) => e.position;

const emptyPage = { events: [], next: null };

// One function per route; the order here is the order /openapi.json lists them in.
export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, options) => {
  registerProductEvents(app, options);
  registerReservationEvents(app, options);
  registerLogEvents(app, options);
};

function registerProductEvents(app: RouteApp, { eventLog }: EventRoutesOptions): void {
  app.get(
    '/products/:sku/events',
    {
      schema: {
        operationId: 'listProductEvents',
        summary: "A product's audit events in seq order",
        description:
          '`after` is a seq (0 or absent: from the first event); `next` is the seq to pass as `after` for the ' +
          "following page, or null when nothing more follows. A product's seq is gap-free and equals its version " +
          'right after the event, so replaying its events reproduces its inventory.',
        tags: ['audit'],
        params: SkuParams,
        querystring: EventPageQuery,
        response: { 200: jsonResponse(ref(EventPage), 'a page of events'), ...problemResponses(404) },
      },
    },
    async (request) => {
      const { sku } = request.params;
      const page = await eventLog.productEvents(sku, afterOf(request.query), limitOf(request.query));
      if (page === null) throw new ApiError('product_not_found', `no product ${sku}`);
      return pageJson(page, bySeq);
    },
  );
}

function registerReservationEvents(app: RouteApp, { eventLog }: EventRoutesOptions): void {
  app.get(
    '/reservations/:id/events',
    {
      schema: {
        operationId: 'listReservationEvents',
        summary: "A reservation's audit events in commit order",
        description:
          'Its reservation, its end (purchased, cancelled or expired) and every rejected request about it. ' +
          'All its products (a cart has several), in commit order: `after` and `next` are global positions.',
        tags: ['audit'],
        params: ReservationParams,
        querystring: EventPageQuery,
        response: { 200: jsonResponse(ref(EventPage), 'a page of events'), ...problemResponses(404) },
      },
    },
    async (request) => {
      const id = request.params.id.toLowerCase();
      const page = await eventLog.reservationEvents(id, afterOf(request.query), limitOf(request.query));
      if (page === null) throw new ApiError('reservation_not_found', `no reservation ${id}`);
      return pageJson(page, byPosition);
    },
  );
}

function registerLogEvents(app: RouteApp, { eventLog }: EventRoutesOptions): void {
  app.get(
    '/events',
    {
      schema: {
        operationId: 'listEvents',
        summary: 'The audit events of all products, in commit order',
        description:
          'Each event carries its `position` in the log; `after` is a position (0 or absent: from the start) ' +
          'and `next` is the position of the last event of the page, or null when nothing more follows yet. ' +
          'Events are ordered by the transaction that wrote them, and a page only holds transactions older than ' +
          'every transaction still running, so a reader following `next` never skips an event that commits later: ' +
          'the newest events appear once the transactions before them have finished (usually milliseconds). ' +
          'To follow the log, keep the position of the last event received and ask again with it as `after`. ' +
          'An `after` that is not (yet) the position of an event answers an empty page, as an `after` past the end ' +
          "of a product's events does.",
        tags: ['audit'],
        querystring: EventPageQuery,
        response: { 200: jsonResponse(ref(EventPage), 'a page of events'), ...problemResponses() },
      },
    },
    async (request) => {
      const after = request.query.after === undefined || request.query.after === 0 ? null : afterOf(request.query);
      const page = await eventLog.logEvents(after, limitOf(request.query));
      // No event has that position: nothing follows it that this cursor could name.
      if (page === null) return emptyPage;
      return pageJson(page, byPosition);
    },
  );
}
