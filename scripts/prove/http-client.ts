import { Agent, request } from 'undici';

/** One HTTP exchange as the client saw it. */
export interface Answer {
  /** The x-request-id the client sent: it ties the answer to the server's log and audit events. */
  readonly requestId: string;
  /** null: no HTTP answer at all (connection refused or reset, or the client's own timeout). */
  readonly status: number | null;
  readonly body: any;
  /** The answer carried `idempotent-replayed: true`: the key had been executed before. */
  readonly replayed: boolean;
  readonly retryAfter: string | undefined;
  /** The x-request-id the server answered with (docs/API.md: echoed when the client sent one). */
  readonly echoedRequestId: string | undefined;
  readonly sentAtMs: number;
  readonly latencyMs: number;
}

export const answeredAtMs = (a: Answer) => a.sentAtMs + a.latencyMs;

/** 2xx or 4xx: the server decided, and a retry with the same key must get the same. */
export const isFinal = (a: Answer) => a.status !== null && a.status < 500;

export interface SendOptions {
  readonly body?: unknown;
  readonly key?: string;
  /**
   * true lets undici pipeline this POST behind others on one connection. Only for requests that
   * carry an Idempotency-Key: undici may resend a pipelined request after a connection error, and
   * the key turns such a resend into a replay. false keeps even a GET alone on its connection.
   */
  readonly pipelined?: boolean;
}

/**
 * Sends requests and never throws for a network failure (that is an answer with status null).
 * Every request carries a fresh x-request-id named after its scenario.
 */
export class ProofClient {
  private sequence = 0;

  constructor(
    readonly baseUrl: string,
    readonly agent: Agent,
    private readonly requestIdPrefix: string,
  ) {}

  async send(method: 'GET' | 'POST', urlPath: string, options: SendOptions = {}): Promise<Answer> {
    const requestId = `${this.requestIdPrefix}-${++this.sequence}`;
    const headers: Record<string, string> = { 'x-request-id': requestId };
    if (options.key !== undefined) headers['idempotency-key'] = options.key;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const sentAtMs = Date.now();
    const startedMs = performance.now();
    try {
      const res = await request(`${this.baseUrl}${urlPath}`, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        dispatcher: this.agent,
        idempotent: options.pipelined,
        // undici holds back the next pipelined request until this one's headers arrive unless told
        // the answer will not take long.
        blocking: options.pipelined === true ? false : undefined,
        // Far above every bound the proof asserts: a hang shows up as a measured latency.
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      const text = await res.body.text();
      const json = String(res.headers['content-type'] ?? '').includes('json');
      const header = (name: string) => (typeof res.headers[name] === 'string' ? res.headers[name] : undefined);
      return {
        requestId,
        status: res.statusCode,
        body: text.length > 0 && json ? JSON.parse(text) : text,
        replayed: header('idempotent-replayed') === 'true',
        retryAfter: header('retry-after'),
        echoedRequestId: header('x-request-id'),
        sentAtMs,
        latencyMs: performance.now() - startedMs,
      };
    } catch (error) {
      return { requestId, status: null, body: String(error), replayed: false, retryAfter: undefined, echoedRequestId: undefined, sentAtMs, latencyMs: performance.now() - startedMs };
    }
  }

  /** A request whose answer must be `status`; anything else stops the scenario with what came back. */
  async expect(status: number, method: 'GET' | 'POST', urlPath: string, options: SendOptions = {}): Promise<any> {
    const answer = await this.send(method, urlPath, options);
    if (answer.status !== status) throw new Error(`${method} ${urlPath}: expected ${status}, got ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  }
}

/** An agent for ordinary traffic; the flash-sale scenario builds its own with 1,000 connections. */
export function ordinaryAgent(): Agent {
  return new Agent({ connections: 256, keepAliveTimeout: 4_000, connect: { timeout: 2_000 } });
}
