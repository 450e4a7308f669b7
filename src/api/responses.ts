import { Type, type TSchema } from 'typebox';
import { requestIdPattern, retryAfterSeconds } from '../engine/limits.ts';
import { codesOfStatus, type ProblemStatus } from './errors.ts';
import { Problem, ref } from './schemas.ts';

// The responses of a route as /openapi.json declares them: status, media type, body and headers.
// Fastify serializes each body with the schema of its status and media type; the `headers` are
// documentation only (Fastify does not check response headers; test/support checks them all).

/**
 * A response header as @fastify/swagger copies it into /openapi.json. `required` is not JSON
 * Schema: src/api/openapi.ts moves it from the schema to the header object.
 */
interface HeaderSchema {
  readonly type: 'string' | 'integer';
  readonly description: string;
  readonly required?: true;
  readonly [keyword: string]: unknown;
}

const requestIdHeader: HeaderSchema = {
  type: 'string',
  pattern: requestIdPattern.source,
  description:
    "the client's x-request-id when it is 1-128 printable ASCII characters without spaces, else a generated UUID",
  required: true,
};

const replayedHeader: HeaderSchema = {
  type: 'string',
  enum: ['true'],
  description: 'present when this is the stored answer to an earlier request with the same Idempotency-Key',
};

const retryAfterHeader: HeaderSchema = {
  type: 'integer',
  minimum: retryAfterSeconds,
  description: 'seconds to wait before retrying',
  required: true,
};

/** A 2xx answer with a JSON body; `replayable` when an Idempotency-Key can replay it. */
export function jsonResponse<T extends TSchema>(
  schema: T,
  description: string,
  options: { replayable?: boolean } = {},
) {
  return {
    description,
    headers:
      options.replayable === true
        ? { 'x-request-id': requestIdHeader, 'idempotent-replayed': replayedHeader }
        : { 'x-request-id': requestIdHeader },
    content: { 'application/json': { schema } },
  };
}

/** A 200 answer in another media type (Prometheus text, HTML): a string body. */
export function textResponse(mediaType: string, description: string) {
  return {
    description,
    headers: { 'x-request-id': requestIdHeader },
    content: { [mediaType]: { schema: Type.String() } },
  };
}

/**
 * What every route can answer, whatever it does: 400 (a malformed URL or header, an unknown
 * query parameter), 408 and 431 (refused by the HTTP parser), 500 (the service failed) and 503
 * (load shedding, shutdown, storage).
 */
const everyRouteStatuses = [400, 408, 431, 500, 503] as const satisfies readonly ProblemStatus[];

function problemResponse(status: ProblemStatus) {
  const codes = codesOfStatus(status)
    .map((code) => `\`${code}\``)
    .join(', ');
  // A stored rejection (409) is replayed like a success; every 503 says when to retry.
  const headers =
    status === 503
      ? { 'x-request-id': requestIdHeader, 'retry-after': retryAfterHeader }
      : status === 409
        ? { 'x-request-id': requestIdHeader, 'idempotent-replayed': replayedHeader }
        : { 'x-request-id': requestIdHeader };
  return {
    description: `problem: ${codes}`,
    headers,
    content: { 'application/problem+json': { schema: ref(Problem) } },
  };
}

type ProblemResponses<S extends ProblemStatus> = Record<
  S | (typeof everyRouteStatuses)[number],
  ReturnType<typeof problemResponse>
>;

/**
 * The problem+json answers of a route: the `statuses` it can answer besides those every route
 * can (`everyRouteStatuses`). One declaration per status, each naming its possible codes.
 */
export function problemResponses<S extends ProblemStatus>(...statuses: S[]): ProblemResponses<S> {
  const all = [...new Set<ProblemStatus>([...everyRouteStatuses, ...statuses])].sort((a, b) => a - b);
  return Object.fromEntries(all.map((status) => [status, problemResponse(status)])) as ProblemResponses<S>;
}
