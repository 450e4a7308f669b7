import { pino, type Logger } from 'pino';
import { Agent, request } from 'undici';
import { startApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { Clock } from '../../src/engine/clock.ts';
import type { EngineObserver } from '../../src/engine/observer.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { InvariantWatch } from './invariant-watch.ts';
import { ContractWatch } from './openapi-contract.ts';

export interface TestApp {
  readonly app: App;
  readonly db: TestDatabase;
  readonly baseUrl: string;
  http<T = any>(method: string, path: string, options?: HttpOptions): Promise<HttpResponse<T>>;
  close(): Promise<void>;
}

export interface HttpOptions {
  body?: unknown;
  /** A raw body string sent as is (with the given content type). */
  rawBody?: string;
  headers?: Record<string, string>;
  key?: string;
}

export interface HttpResponse<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

/** One agent for all tests of a file: enough sockets for the 10,000-request storms. */
export const agent = new Agent({ connections: 2000, pipelining: 1, keepAliveTimeout: 10_000, connectTimeout: 30_000 });

export async function http<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: HttpOptions = {},
): Promise<HttpResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  if (options.key !== undefined) headers['idempotency-key'] = options.key;
  const response = await request(`${baseUrl}${path}`, {
    method: method as 'GET',
    headers,
    body,
    dispatcher: agent,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const text = await response.body.text();
  let parsed: unknown = text;
  const type = String(response.headers['content-type'] ?? '');
  if (type.includes('json') && text.length > 0) parsed = JSON.parse(text);
  return { status: response.statusCode, headers: response.headers, body: parsed as T };
}

export interface TestAppOptions {
  env?: Record<string, string>;
  clock?: Clock;
  observers?: EngineObserver[];
  db?: TestDatabase;
  /** The service's logger (by default one at TEST_LOG_LEVEL, or silent). */
  logger?: Logger;
}

/**
 * Starts the real service on a fresh database, listening on a free loopback port. Every answer
 * it sends is checked against its own /openapi.json, and close() fails on the first broken
 * invariant or on any answer outside the document.
 */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db = options.db ?? (await createTestDatabase());
  const config = loadConfig({
    DATABASE_URL: db.url,
    PORT: '0',
    LOG_LEVEL: 'silent',
    SECVENTORY_SWEEP_INTERVAL_MS: '200',
    SECVENTORY_POOL_SIZE: '8',
    ...options.env,
  });
  const watch = new InvariantWatch();
  const contract = new ContractWatch();
  const observers = [...(options.observers ?? []), watch];
  const app = await startApp({
    config,
    logger: options.logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? config.logLevel }),
    clock: options.clock,
    observers,
    configureServer: (server) => contract.install(server),
  });
  const baseUrl = app.url;
  return {
    app,
    db,
    baseUrl,
    http: (method, path, opts) => http(baseUrl, method, path, opts),
    close: async () => {
      await app.stop();
      if (options.db === undefined) await db.drop();
      watch.assertNone();
      contract.assertNone();
    },
  };
}
