import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { installErrorHandlers } from '../../src/api/errors.ts';
import { installEventLoopShedding } from '../../src/api/load-shedding.ts';
import { waitUntil } from '../support/database.ts';

const app = Fastify();
installErrorHandlers(app);
installEventLoopShedding(app, 100, 50);
app.get('/work', async () => ({ ok: true }));
afterAll(() => app.close());

function blockEventLoop(ms: number) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // Busy: nothing else may run, as under a CPU-bound burst.
  }
}

describe('event-loop load shedding', () => {
  it('refuses new requests with 503 overloaded while the event loop lags, and serves again once it recovers', async () => {
    expect((await app.inject('/work')).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) {
      blockEventLoop(400);
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitUntil(async () => (await app.inject('/work')).statusCode === 503, 2000, 'requests were refused');
    const refused = await app.inject('/work');
    expect(refused.json()).toMatchObject({ code: 'overloaded', status: 503 });
    expect(refused.headers['retry-after']).toBe('1');
    await waitUntil(async () => (await app.inject('/work')).statusCode === 200, 5000, 'requests were served again');
  });
});
