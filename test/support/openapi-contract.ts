import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ajvFormats } from '../../src/api/text.ts';

// Checks answers against the OpenAPI document the service serves: the status is declared for
// the operation, the media type for the status, the body fits that media type's schema, every
// declared header fits its schema, the required ones are there, and none of the service's own
// headers appears where the document does not declare it. Every schema is compiled by its JSON
// pointer into the document itself, so what is checked is exactly what a client generated from
// /openapi.json expects.

interface HeaderObject {
  readonly required?: boolean;
  readonly schema: { readonly type?: string };
}
interface ResponseObject {
  readonly headers?: Record<string, HeaderObject>;
  readonly content?: Record<string, unknown>;
}
interface OpenApiDocument {
  readonly paths: Record<string, Record<string, { readonly responses: Record<string, ResponseObject> }>>;
}

/** A header as Fastify's reply holds it. */
type HeaderValue = number | string | string[] | undefined;

/** One answer as the server sent it. `route` is Fastify's route pattern; undefined when nothing matched. */
export interface ObservedResponse {
  readonly method: string;
  readonly route: string | undefined;
  readonly url: string;
  readonly status: number;
  readonly headers: Record<string, HeaderValue>;
  readonly body: string | undefined;
}

/** The headers the service itself sets: one that the document does not declare is a mismatch. */
const serviceHeaders = ['x-request-id', 'idempotent-replayed', 'retry-after'];

const documentId = 'openapi.json';
const escapePointer = (token: string) => token.replaceAll('~', '~0').replaceAll('/', '~1');
/** `/products/:sku` as the document writes it: `/products/{sku}`. */
const documentPath = (route: string) => route.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const mediaTypeOf = (contentType: HeaderValue) =>
  String(contentType ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();

export class OpenApiContract {
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(private readonly document: OpenApiDocument) {
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(this.ajv);
    for (const [name, format] of Object.entries(ajvFormats)) this.ajv.addFormat(name, format);
    this.ajv.addSchema(structuredClone(document), documentId);
  }

  /** What is wrong with `response`, one line each; empty when it keeps the contract. */
  check(response: ObservedResponse): string[] {
    const where = `${response.method} ${response.url} -> ${response.status}`;
    const path = response.route === undefined ? undefined : documentPath(response.route);
    // HEAD is answered by the GET route, without a body.
    const method = response.method === 'HEAD' ? 'get' : response.method.toLowerCase();
    const operation = path === undefined ? undefined : this.document.paths[path]?.[method];
    if (operation === undefined) return this.checkUnrouted(response, where);
    const declared = operation.responses[String(response.status)];
    if (declared === undefined) return [`${where}: status not declared for ${method.toUpperCase()} ${path}`];
    const pointer = `/paths/${escapePointer(path!)}/${method}/responses/${response.status}`;
    return [
      ...this.checkHeaders(response, declared, pointer, where),
      ...this.checkBody(response, declared, pointer, where),
    ];
  }

  /** No operation: an unknown route or method (404), or a refusal before routing (400, 503). */
  private checkUnrouted(response: ObservedResponse, where: string): string[] {
    const media = mediaTypeOf(response.headers['content-type']);
    if (media !== 'application/problem+json')
      return [`${where}: no operation in the document, and not a problem but ${media}`];
    const problems = this.validate('/components/schemas/Problem', JSON.parse(response.body ?? ''));
    const id = response.headers['x-request-id'] === undefined ? ['no x-request-id'] : [];
    return [...problems, ...id].map((p) => `${where}: ${p}`);
  }

  private checkHeaders(response: ObservedResponse, declared: ResponseObject, pointer: string, where: string): string[] {
    const mismatches: string[] = [];
    const headers = declared.headers ?? {};
    for (const name of serviceHeaders) {
      if (response.headers[name] !== undefined && headers[name] === undefined)
        mismatches.push(`${where}: header ${name} is not declared`);
    }
    for (const [name, header] of Object.entries(headers)) {
      const raw = response.headers[name.toLowerCase()];
      if (raw === undefined) {
        if (header.required === true) mismatches.push(`${where}: required header ${name} is missing`);
        continue;
      }
      const text = String(raw);
      // A header is text on the wire; an integer header is compared as the number it spells.
      const value = header.schema.type === 'integer' && /^[0-9]+$/.test(text) ? Number(text) : text;
      const headerPointer = `${pointer}/headers/${escapePointer(name)}/schema`;
      for (const problem of this.validate(headerPointer, value)) mismatches.push(`${where}: header ${name} ${problem}`);
    }
    return mismatches;
  }

  private checkBody(response: ObservedResponse, declared: ResponseObject, pointer: string, where: string): string[] {
    const content = declared.content ?? {};
    const media = mediaTypeOf(response.headers['content-type']);
    if (Object.keys(content).length === 0) return response.body ? [`${where}: a body where none is declared`] : [];
    if (!(media in content))
      return [`${where}: media type ${media || '(none)'} is not one of ${Object.keys(content).join(', ')}`];
    if (response.method === 'HEAD') return [];
    const isJson = media === 'application/json' || media.endsWith('+json');
    let body: unknown = response.body ?? '';
    if (isJson) {
      try {
        body = JSON.parse(response.body ?? '');
      } catch {
        return [`${where}: the ${media} body is not JSON`];
      }
    }
    return this.validate(`${pointer}/content/${escapePointer(media)}/schema`, body).map((p) => `${where}: body ${p}`);
  }

  private validate(pointer: string, value: unknown): string[] {
    let validate = this.validators.get(pointer);
    if (validate === undefined) {
      validate = this.ajv.compile({ $ref: `${documentId}#${pointer}` });
      this.validators.set(pointer, validate);
    }
    if (validate(value)) return [];
    return (validate.errors ?? []).map(
      (e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
    );
  }
}

/** Answers kept for checking; past this many they are checked at once, to bound the memory held. */
const pendingMax = 50_000;

/**
 * Checks every answer of a test server against the document that server serves, and collects
 * what does not fit, so a test harness fails on it (like InvariantWatch): a test can pass while
 * an answer it did not look at breaks the contract. Answers are copied as they are sent and
 * checked when the harness asks, so the check costs the server under test nothing while it
 * works (a storm of 10,000 requests is timed as it would be without it).
 */
export class ContractWatch {
  readonly mismatches: string[] = [];
  private readonly pending: ObservedResponse[] = [];
  private app: FastifyInstance | undefined;
  private contract: OpenApiContract | undefined;

  /** Adds the copying hook to a server being built (ServerDeps.configure). */
  install(app: FastifyInstance): void {
    this.app = app;
    app.addHook('onSend', (request, reply, payload, done) => {
      this.observe(request, reply, payload);
      done(null, payload);
    });
  }

  private observe(request: FastifyRequest, reply: FastifyReply, payload: unknown): void {
    if (request.routeOptions.schema?.hide === true) return;
    const body =
      typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
    this.pending.push({
      method: request.method,
      route: request.routeOptions.url,
      url: request.url,
      status: reply.statusCode,
      headers: { ...reply.getHeaders() },
      body,
    });
    if (this.pending.length >= pendingMax) this.checkPending();
  }

  /** Checks the answers kept so far against the served document. */
  checkPending(): void {
    if (this.pending.length === 0) return;
    if (this.app === undefined) throw new Error('ContractWatch: install() was not called');
    this.contract ??= new OpenApiContract(this.app.swagger() as unknown as OpenApiDocument);
    for (const response of this.pending.splice(0)) {
      try {
        this.mismatches.push(...this.contract.check(response));
      } catch (error) {
        this.mismatches.push(`${response.method} ${response.url}: the check failed: ${(error as Error).message}`);
      }
    }
  }

  /** Throws naming every distinct mismatch seen (at most 20), with how many answers had one. */
  assertNone(): void {
    this.checkPending();
    if (this.mismatches.length === 0) return;
    const distinct = [...new Set(this.mismatches)];
    throw new Error(`${this.mismatches.length} answer(s) outside /openapi.json:\n${distinct.slice(0, 20).join('\n')}`);
  }
}
