import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { NoQuery } from './schemas.ts';

// GET /openapi.json and the /docs page, generated from the route schemas. docs/API.md is the
// contract; this document says the same for tools and generated clients.

const conventions = `An inventory reservation engine that is never wrong about stock. The contract is docs/API.md in
the repository; this document is generated from the same route schemas that validate every request.

- JSON in, JSON out. Types are not coerced: \`"1"\` is not \`1\`. Unknown body fields and unknown query
  parameters are refused with 400 \`validation_failed\`, on every route. When a key appears twice in a
  body, the last one wins, as in \`JSON.parse\`.
- Every error is \`application/problem+json\` (RFC 9457, the \`Problem\` schema); branch on its \`code\`.
- Every answer carries \`x-request-id\`: the client's own when it is 1-128 printable ASCII characters
  without spaces, else a generated UUID. It is recorded as \`requestId\` on the audit events.
- \`Idempotency-Key\` (required on reservations and stock adjustments, accepted on every other POST):
  a repeat with the same key and payload gets the stored answer with \`idempotent-replayed: true\`.
  A 5xx was not acknowledged: retrying with the same key is always safe.
- Every 503 carries \`Retry-After\` (seconds).
- The API has no authentication of its own (\`security: []\`).`;

const tags = [
  { name: 'products', description: 'Products and their stock' },
  { name: 'reservations', description: 'Reserve stock, then purchase or cancel; unpaid reservations expire' },
  { name: 'audit', description: 'The immutable audit log, paged by cursor' },
  { name: 'operations', description: 'Health, metrics and live figures for operators' },
];

interface Document {
  paths: Record<string, Record<string, { responses?: Record<string, { headers?: Record<string, HeaderObject> }> }>>;
}
interface HeaderObject {
  required?: boolean;
  schema: { required?: unknown };
}

/**
 * @fastify/swagger copies a response header's schema as it is; src/api/responses.ts marks the
 * headers always sent with `required: true` there, which belongs on the header object.
 */
function liftRequiredHeaders<T extends Document>(document: T): T {
  for (const operations of Object.values(document.paths)) {
    for (const operation of Object.values(operations)) {
      for (const response of Object.values(operation.responses ?? {})) {
        for (const header of Object.values(response.headers ?? {})) {
          if (header.schema.required === true) header.required = true;
          delete header.schema.required;
        }
      }
    }
  }
  return document;
}

/**
 * A body whose schema admits null may be left out (a purchase without a body buys everything):
 * @fastify/swagger marks every declared body required, so those are marked optional here.
 */
function optionalNullableBodies(doc: Document): Document {
  for (const methods of Object.values(doc.paths ?? {})) {
    for (const operation of Object.values(methods ?? {}) as {
      requestBody?: { required?: boolean; content?: Record<string, { schema?: { anyOf?: { type?: string }[] } }> };
    }[]) {
      const schema = operation?.requestBody?.content?.['application/json']?.schema;
      if (schema?.anyOf?.some((s) => s.type === 'null')) operation.requestBody!.required = false;
    }
  }
  return doc;
}

/** Registers GET /openapi.json and /docs. Call before the routes, so that every route is in it. */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Secventory', version: '1.0.0', description: conventions },
      // The document is served by the service it describes: the same origin.
      servers: [{ url: '/', description: 'the service that serves this document' }],
      tags,
      // No authentication, by design (docs/API.md): declared, not forgotten.
      security: [],
    },
    // Named schemas (`$id`) become components under their own names, not def-0, def-1...
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
    transformObject: (documentObject) =>
      'openapiObject' in documentObject
        ? (optionalNullableBodies(
            liftRequiredHeaders(documentObject.openapiObject as Document),
          ) as typeof documentObject.openapiObject)
        : documentObject.swaggerObject,
  });
  // The page shows each operationId: the name a generated client gives the call.
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { displayOperationId: true, defaultModelsExpandDepth: 1 },
  });
  app.get('/openapi.json', { schema: { hide: true, querystring: NoQuery } }, async () => app.swagger());
}
