import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { http } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { ContractWatch } from '../support/openapi-contract.ts';

const lines: string[] = [];
let app: App;
let db: TestDatabase;
const contract = new ContractWatch();

beforeAll(async () => {
  db = await createTestDatabase();
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  app = await startApp({
    config: loadConfig({ DATABASE_URL: db.url, PORT: '0', LOG_LEVEL: 'trace' }),
    logger: pino({ level: 'trace' }, sink),
    configureServer: (server) => contract.install(server),
  });
});
afterAll(async () => {
  await app?.stop();
  await db?.drop();
  contract.assertNone();
});

describe('safe defaults', () => {
  it('listens on 127.0.0.1 unless told otherwise', () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(new URL(app.url).hostname).toBe('127.0.0.1');
  });

  it('logs never contain request bodies, even at trace level and on failures', async () => {
    const secret = 'SECRET-CUSTOMER-NOTE-93f1';
    await http(app.url, 'POST', '/products', { body: { sku: 'LOG-1', name: secret, stock: 1 } });
    await http(app.url, 'POST', '/products', { body: { sku: 'LOG-1', name: secret, stock: 1, extra: secret } });
    await http(app.url, 'POST', '/products/LOG-1/stock-adjustments', { key: 'k', body: { delta: 1, reason: secret } });
    await http(app.url, 'POST', '/products', {
      rawBody: `{"sku": "${secret}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain(secret);
  });

  it('answers to malformed input carry no stack trace or SQL', async () => {
    const res = await http(app.url, 'POST', '/products', {
      rawBody: '{"sku":',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).not.toMatch(/\.ts:\d+|node_modules|select |insert /i);
  });
});
