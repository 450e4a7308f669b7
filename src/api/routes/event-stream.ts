import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { ApiError } from '../errors.ts';
import type { EventStreams } from '../event-streams.ts';
import { problemResponses, textResponse } from '../responses.ts';
import { cursorMax, Sku } from '../schemas.ts';

export interface EventStreamRoutesOptions {
  readonly streams: EventStreams;
}

const EventStreamQuery = Type.Object(
  {
    after: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: cursorMax,
        description: 'the position of the last event the client has; 0 or absent: from the first event',
      }),
    ),
    // Only this product's events; positions stay those of the whole log.
    sku: Type.Optional(Sku),
  },
  { additionalProperties: false },
);

// Other headers are allowed: no additionalProperties. The digits' value is checked against
// cursorMax in the handler (a pattern cannot bound a number).
const EventStreamHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({
      pattern: '^[0-9]{1,16}$',
      description:
        'what an EventSource client sends when it reconnects: the `id` of the last message it received; ' +
        'takes precedence over `after`',
    }),
  ),
});

const description =
  'A `text/event-stream` (server-sent events) of the whole audit log, in the order of `GET /events`, with the ' +
  'same rule: only transactions older than every running one, so nothing is ever skipped. Each message has ' +
  "`id` (the event's `position`), `event` (its `type`) and `data` (the Event JSON of `GET /events`). `sku` " +
  "keeps one product's events (positions stay global). The stream starts after `Last-Event-ID` or `after` " +
  '(0 or absent: the first event), catches up, then follows new events of every instance within a second. ' +
  '`: keep-alive` comments are sent after 15 s without data. Reconnecting with the last `id` received resumes ' +
  'with no gap and no duplicate, also on another instance or after a restart. A position that is no event ' +
  'is 400; past the streams an instance serves, 503.';

type Query = Static<typeof EventStreamQuery>;
type Headers = Static<typeof EventStreamHeaders>;

/** Where the client resumes: Last-Event-ID wins over `after` (EventSource sends it on every reconnection). */
function resumePosition(query: Query, headers: Headers): number {
  const header = headers['last-event-id'];
  if (header === undefined) return query.after ?? 0;
  const position = Number(header);
  if (position > cursorMax)
    throw new ApiError('validation_failed', `headers /last-event-id must be at most ${cursorMax}`);
  return position;
}

export const eventStreamRoutes: FastifyPluginAsyncTypebox<EventStreamRoutesOptions> = async (app, { streams }) => {
  app.get(
    '/events/stream',
    {
      // A HEAD would be answered by draining an endless stream: it is not offered.
      exposeHeadRoute: false,
      schema: {
        operationId: 'streamEvents',
        summary: 'The audit events of all products as they commit, as server-sent events',
        description,
        tags: ['audit'],
        querystring: EventStreamQuery,
        headers: EventStreamHeaders,
        response: {
          200: textResponse('text/event-stream', 'an endless stream of events, one message per event'),
          ...problemResponses(),
        },
      },
    },
    async (request, reply) => {
      const position = resumePosition(request.query, request.headers);
      if (!streams.reserve()) {
        throw new ApiError('overloaded', 'this instance serves as many event streams as it can; retry later');
      }
      let opened = false;
      try {
        // Read before the stream starts, so that an unknown position is refused with a status.
        const firstPage = await streams.firstPage(position);
        if (firstPage === null) {
          const detail = `no event has position ${position}: resume from the id of a message received`;
          throw new ApiError('validation_failed', detail);
        }
        const stream = streams.open({ position, sku: request.query.sku, firstPage }, reply.raw);
        opened = true;
        // The answer is the stream itself: Fastify pipes it and serializes nothing. The 200 schema
        // describes the text on the wire, which the type provider takes for the body's type.
        return reply
          .type('text/event-stream')
          .header('cache-control', 'no-store')
          .header('x-accel-buffering', 'no')
          .send(stream as unknown as string);
      } finally {
        if (!opened) streams.release();
      }
    },
  );
};
