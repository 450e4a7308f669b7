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
    // Keep the loop lagging (busy 300 ms out of every ~310 ms) for as long as it takes to see it.
    const lag = setInterval(() => blockEventLoop(300), 10);
    try {
      let refused: Awaited<ReturnType<typeof app.inject>> | undefined;
      await waitUntil(
        async () => {
          const res = await app.inject('/work');
          if (res.statusCode === 503) refused = res;
          return refused !== undefined;
        },
        10_000,
        'requests were refused',
      );
      expect(refused!.json()).toMatchObject({ code: 'overloaded', status: 503 });
      expect(refused!.headers['retry-after']).toBe('1');
    } finally {
      clearInterval(lag);
    }
    await waitUntil(async () => (await app.inject('/work')).statusCode === 200, 5000, 'requests were served again');
  });
});
