import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { sendProblem } from './errors.ts';

/**
 * Refuses new requests with 503 overloaded while the event loop lags more than `delayMsMax`,
 * so the requests already accepted keep a bounded latency.
 *
 * Written here rather than taken from @fastify/under-pressure (which still guards the heap): its
 * event-loop check reads a window with no samples as an infinite delay, and on a starved CPU it
 * then refuses everything though nothing is late. A window without samples keeps the last reading.
 */
export function installEventLoopShedding(app: FastifyInstance, delayMsMax: number, sampleIntervalMs = 250): void {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let delayMs = 0;
  const sampler = setInterval(() => {
    if (histogram.count > 0) delayMs = Math.max(0, histogram.mean / 1e6 - 10);
    histogram.reset();
  }, sampleIntervalMs);
  sampler.unref();
  app.addHook('onClose', async () => {
    clearInterval(sampler);
    histogram.disable();
  });
  app.addHook('onRequest', (_request, reply, done) => {
    if (delayMs <= delayMsMax) return done();
    void sendProblem(
      reply,
      'overloaded',
      `the server is overloaded (event loop ${Math.round(delayMs)} ms late); nothing was done`,
    );
  });
}
