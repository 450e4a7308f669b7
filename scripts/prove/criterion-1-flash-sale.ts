import os from 'node:os';
import { Agent, request } from 'undici';
import { answerLine, figuresOf, tallyLine } from './answers.ts';
import type { ProofContext } from './context.ts';
import type { Criterion } from './criterion.ts';
import { productFacts, reservationRows, transactionsOf } from './database-facts.ts';
import { excerptOf } from './server-log.ts';
import { ApiClient, type Answer } from '../lib/api-client.ts';

export const flashSku = 'FLASH-1';
const stock = 1_000;
const requestCount = 10_000;
const connections = 1_000;

export interface FlashSaleEvidence {
  readonly answers: readonly Answer[];
}

/** Samples, while the burst runs, how many requests are on the wire and how deep the product's mailbox is. */
function startConcurrencySampler(agent: Agent, appUrl: string) {
  const origin = new URL(appUrl).origin;
  let inFlightMax = 0;
  let connectedMax = 0;
  let mailboxMax = 0;
  let stopped = false;
  const onWire = setInterval(() => {
    const stats = agent.stats[origin] as { running?: number; connected?: number } | undefined;
    inFlightMax = Math.max(inFlightMax, stats?.running ?? 0);
    connectedMax = Math.max(connectedMax, stats?.connected ?? 0);
  }, 5);
  // A separate connection asks the server itself; its answers come between batches.
  const sampler = new Agent({ connections: 1 });
  const serverSide = (async () => {
    while (!stopped) {
      try {
        const res = await request(`${appUrl}/actors?limit=1`, { dispatcher: sampler, headersTimeout: 5_000 });
        const body = (await res.body.json()) as { actors: { sku: string; queueDepth: number }[] };
        for (const a of body.actors) if (a.sku === flashSku) mailboxMax = Math.max(mailboxMax, a.queueDepth);
      } catch {
        // A sample lost under load is only a sample.
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      clearInterval(onWire);
      await serverSide;
      await sampler.close();
      return { inFlightMax, connectedMax, mailboxMax };
    },
  };
}

interface Burst {
  readonly answers: Answer[];
  readonly wallMs: number;
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  readonly concurrency: { inFlightMax: number; connectedMax: number; mailboxMax: number };
}

/** Opens the connections, then sends every reservation request at once. */
async function sendBurst(ctx: ProofContext, c: Criterion): Promise<Burst> {
  const agent = new Agent({
    connections,
    pipelining: Math.ceil(requestCount / connections),
    keepAliveTimeout: 10_000,
    connect: { timeout: 10_000 },
  });
  try {
    const burst = new ApiClient(ctx.app.url, agent, 'c1');
    // Open the connections first (one request each, not pipelined), so the burst measures the
    // service rather than 1,000 TCP handshakes.
    const warm = await Promise.all(
      Array.from({ length: connections }, () => burst.send('GET', '/health/live', { pipelined: false })),
    );
    c.equal(
      'connections warmed up with GET /health/live',
      { '200': connections },
      { [String(warm[0]?.status)]: warm.filter((a) => a.status === 200).length },
    );
    const sampler = startConcurrencySampler(agent, ctx.app.url);
    const startedAtMs = Date.now();
    const startedMs = performance.now();
    const answers = await Promise.all(
      Array.from({ length: requestCount }, (_, i) =>
        burst.send('POST', `/products/${flashSku}/reservations`, {
          key: `flash-${i}`,
          body: { quantity: 1 },
          pipelined: true,
        }),
      ),
    );
    const wallMs = performance.now() - startedMs;
    return { answers, wallMs, startedAtMs, endedAtMs: Date.now(), concurrency: await sampler.stop() };
  } finally {
    await agent.close();
  }
}

/**
 * Criterion 1: 10,000 reservation requests for one unit each, all sent at once over 1,000
 * connections, on a product with 1,000 in stock. Exactly 1,000 may succeed.
 */
export async function flashSale(ctx: ProofContext, c: Criterion): Promise<FlashSaleEvidence> {
  c.done.push(
    `Created product \`${flashSku}\` with stock ${stock.toLocaleString('en')}.`,
    `Opened ${connections.toLocaleString('en')} keep-alive connections (an undici Agent with \`connections: ${connections}\`), then sent ${requestCount.toLocaleString('en')} \`POST /products/${flashSku}/reservations\` ` +
      '`{"quantity":1}` at once, each with its own Idempotency-Key and x-request-id, pipelined up to 10 per connection so that all of them are in flight together.',
    'Compared every answer with the product row, the reservation rows and the audit events in PostgreSQL.',
  );
  c.expected.push(
    `Exactly ${stock.toLocaleString('en')} answers 201 and ${(requestCount - stock).toLocaleString('en')} answers 409 \`insufficient_stock\`; nothing else.`,
    'No oversell: reserved + purchased <= total; the reservation rows are exactly the 201s; every rejection is an audit event.',
  );
  await ctx.client('c1-setup').expect(201, 'POST', '/products', { body: { sku: flashSku, name: 'Flash sale', stock } });
  const burst = await sendBurst(ctx, c);
  const { answers } = burst;
  const created = answers.filter((a) => a.status === 201);
  const refused = answers.filter((a) => a.status === 409 && a.body?.code === 'insufficient_stock');
  c.equal('answers 201 Created', stock, created.length);
  c.equal('answers 409 insufficient_stock', requestCount - stock, refused.length);
  c.that(
    'all answers',
    `201: ${stock}, 409 insufficient_stock: ${requestCount - stock}`,
    tallyLine(answers),
    created.length + refused.length === requestCount,
  );
  c.equal('distinct reservation ids among the 201s', stock, new Set(created.map((a) => a.body.id)).size);
  c.equal(
    'answers carrying their own x-request-id back',
    requestCount,
    answers.filter((a) => a.echoedRequestId === a.requestId).length,
  );
  const oversoldUnits = await checkState(ctx, c, created);
  c.figures = figuresOf(answers, burst.wallMs, Math.max(0, created.length - stock, oversoldUnits));
  await describe(ctx, c, burst, [created[0], refused[0]]);
  return { answers };
}

/** What the app and PostgreSQL hold after the burst; returns the units oversold. */
async function checkState(ctx: ProofContext, c: Criterion, created: readonly Answer[]): Promise<number> {
  const inventory = await ctx.client('c1-check').expect(200, 'GET', `/products/${flashSku}/inventory`);
  c.equal(
    'GET /products/FLASH-1/inventory',
    { total: stock, reserved: stock, purchased: 0, available: 0, activeReservations: stock },
    {
      total: inventory.total,
      reserved: inventory.reserved,
      purchased: inventory.purchased,
      available: inventory.available,
      activeReservations: inventory.activeReservations,
    },
  );
  const facts = await productFacts(ctx.sql, flashSku);
  c.equal(
    'product row in PostgreSQL (total, reserved, purchased)',
    { total: stock, reserved: stock, purchased: 0 },
    { total: facts.total, reserved: facts.reserved, purchased: facts.purchased },
  );
  c.equal('units oversold (reserved + purchased - total, if positive)', 0, facts.oversoldUnits);
  c.equal(
    'reservation rows in PostgreSQL, by status; sum of their quantities',
    { statuses: { active: stock }, sum: stock },
    { statuses: facts.reservationsByStatus, sum: facts.activeSum },
  );
  const rows = await reservationRows(ctx.sql, [flashSku]);
  const answeredIds = new Set(created.map((a) => a.body.id as string));
  c.equal(
    'reservation rows that are not one of the 201 answers',
    0,
    [...rows.keys()].filter((id) => !answeredIds.has(id)).length,
  );
  c.equal(
    'audit events by type',
    { product_created: 1, rejected: requestCount - stock, reserved: stock },
    facts.eventsByType,
  );
  c.equal('rejected events by code', { insufficient_stock: requestCount - stock }, facts.rejectedByCode);
  return facts.oversoldUnits;
}

async function describe(
  ctx: ProofContext,
  c: Criterion,
  burst: Burst,
  examples: readonly (Answer | undefined)[],
): Promise<void> {
  // Shown, not checked: a sweep that could not get a connection in time is a warning, not a wrong answer.
  const serverWarnings = ctx.logBook
    .between(burst.startedAtMs, burst.endedAtMs)
    .filter((l) => l.level >= 40 || l.level === -1);
  const batches = await transactionsOf(ctx.sql, flashSku);
  Object.assign(c.details, {
    'connections open (client side, max)': burst.concurrency.connectedMax,
    'requests on the wire at once (client side, max)': burst.concurrency.inFlightMax,
    'mailbox depth of FLASH-1 (server /actors, max sampled)': burst.concurrency.mailboxMax,
    'throughput (requests/s)': Math.round(requestCount / (burst.wallMs / 1000)),
    'server log lines at warn or above during the burst': serverWarnings.length,
    'database transactions for the 10,000 decisions': batches.transactions,
    'decisions per transaction (mean)': Math.round((batches.events / Math.max(1, batches.transactions)) * 10) / 10,
  });
  c.notes.push(
    `The latency is mostly time in the queue: all ${requestCount.toLocaleString('en')} requests arrive together, and one product's decisions are serialized ` +
      `by its actor in batches (here ${batches.transactions} transactions), so a request waits for the batches before its own. ` +
      `The machine's ${os.cpus().length} CPUs are shared by the client, the server and PostgreSQL (and by whatever else runs there).`,
  );
  c.excerpt('Answers (the first 201 and the first 409)', examples.filter((a) => a !== undefined).map(answerLine));
  if (serverWarnings.length > 0) c.excerpt('Server log during the burst', serverWarnings.slice(0, 5).map(excerptOf));
}
