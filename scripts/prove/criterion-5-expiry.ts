import { answerLine, figuresOf } from './answers.ts';
import { eventLine, reservationEvents, type AuditEvent } from './audit-trail.ts';
import type { ProofContext } from './context.ts';
import type { Criterion } from './criterion.ts';
import { productFacts } from './database-facts.ts';
import type { Answer, ApiClient } from '../lib/api-client.ts';
import { excerptOf } from './server-log.ts';
import { waitUntil } from '../lib/wait.ts';

export const liveSku = 'TTL-LIVE';
export const downSku = 'TTL-DOWN';
const stock = 5;
const ttlSeconds = 1;
/** The app sweeps every 200 ms (see appEnv); expiry must follow the TTL within a few sweeps. */
const expireWithinMs = 5_000;
/** How long past its expiry the reservation stays unattended while the app is stopped. */
const downtimePastExpiryMs = 1_000;

export interface ExpiryEvidence {
  readonly expiredIds: readonly string[];
}

async function statusInDatabase(ctx: ProofContext, id: string): Promise<string | undefined> {
  const {
    rows: [r],
  } = await ctx.sql.query(`select status from reservations where id = $1`, [id]);
  return r?.status;
}

function expiredEvent(events: readonly AuditEvent[]): AuditEvent | undefined {
  return events.find((e) => e.type === 'expired');
}

/**
 * Criterion 5: a reservation past its TTL is expired and its stock returns: by the sweeper while
 * the app runs, and after a restart for one whose TTL ran out while the app was stopped.
 */
export async function expiry(ctx: ProofContext, c: Criterion): Promise<ExpiryEvidence> {
  c.done.push(
    `Live: reserved 2 of \`${liveSku}\` (stock ${stock}) with \`ttlSeconds: ${ttlSeconds}\` and waited, then tried to purchase it.`,
    `Downtime: reserved 3 of \`${downSku}\` (stock ${stock}) with \`ttlSeconds: ${ttlSeconds}\`, stopped the app (SIGTERM), waited until ${downtimePastExpiryMs / 1000} s past the expiry, ` +
      'checked in PostgreSQL that nobody had expired it, then started a new app process on the same database.',
  );
  c.expected.push(
    `Live: the sweeper expires it within ${expireWithinMs / 1000} s of its TTL; available is ${stock} again; the late purchase is refused with 409 \`reservation_expired\`.`,
    'Downtime: the restarted app expires it by itself (an `expired` event with `source: sweeper` and `lateMs` > 0); available is back to 5.',
  );
  const answers: Answer[] = [];
  const startedMs = performance.now();
  const live = await liveExpiry(ctx, c, answers);
  const down = await downtimeExpiry(ctx, c, answers);
  c.figures = figuresOf(
    answers,
    performance.now() - startedMs,
    (await productFacts(ctx.sql, liveSku)).oversoldUnits + (await productFacts(ctx.sql, downSku)).oversoldUnits,
  );
  c.excerpt(
    'Log of the restarted app (its start)',
    ctx.logBook
      .all()
      .filter((l) => l.server === ctx.app.name)
      .slice(0, 3)
      .map(excerptOf),
  );
  return { expiredIds: [live, down] };
}

/** Sends a request and keeps its answer for the criterion's figures. */
async function sent(
  answers: Answer[],
  client: ApiClient,
  method: 'GET' | 'POST',
  urlPath: string,
  options: Parameters<ApiClient['send']>[2] = {},
): Promise<Answer> {
  const answer = await client.send(method, urlPath, options);
  answers.push(answer);
  return answer;
}

async function liveExpiry(ctx: ProofContext, c: Criterion, answers: Answer[]): Promise<string> {
  const client = ctx.client('c5-live');
  await sent(answers, client, 'POST', '/products', { body: { sku: liveSku, name: liveSku, stock } });
  const r = (
    await sent(answers, client, 'POST', `/products/${liveSku}/reservations`, {
      key: 'ttl-live',
      body: { quantity: 2, ttlSeconds },
    })
  ).body;
  c.equal(
    `${liveSku} available right after reserving 2`,
    stock - 2,
    (await client.expect(200, 'GET', `/products/${liveSku}/inventory`)).available,
  );
  const expiresAtMs = Date.parse(r.expiresAt);
  await waitUntil(
    async () => (await statusInDatabase(ctx, r.id)) === 'expired',
    ttlSeconds * 1000 + expireWithinMs,
    `${liveSku} reservation expired`,
  );
  const expiredSeenAfterMs = Date.now() - expiresAtMs;
  const purchase = await sent(answers, client, 'POST', `/reservations/${r.id}/purchase`, { key: 'ttl-live-buy' });
  const inventory = await client.expect(200, 'GET', `/products/${liveSku}/inventory`);
  const events = await reservationEvents(client, r.id);
  const expired = expiredEvent(events);
  c.equal(
    `${liveSku} inventory after the TTL`,
    { reserved: 0, available: stock, activeReservations: 0 },
    { reserved: inventory.reserved, available: inventory.available, activeReservations: inventory.activeReservations },
  );
  c.equal(`${liveSku} expired by`, 'sweeper', expired?.source);
  c.atMost(
    `${liveSku} expiry lateness (lateMs of the expired event)`,
    expireWithinMs,
    expired?.lateMs ?? Infinity,
    ' ms',
  );
  c.equal('purchase after the expiry', '409 reservation_expired', `${purchase.status} ${purchase.body?.code}`);
  Object.assign(c.details, {
    [`${liveSku}: expired event lateMs`]: expired?.lateMs ?? '—',
    [`${liveSku}: seen expired in PostgreSQL after expiresAt (ms)`]: expiredSeenAfterMs,
  });
  c.excerpt(`Audit trail of the ${liveSku} reservation (GET /reservations/${r.id}/events)`, events.map(eventLine));
  c.excerpt('The late purchase', [answerLine(purchase)]);
  return r.id;
}

async function downtimeExpiry(ctx: ProofContext, c: Criterion, answers: Answer[]): Promise<string> {
  const before = ctx.client('c5-down');
  await sent(answers, before, 'POST', '/products', { body: { sku: downSku, name: downSku, stock } });
  const r = (
    await sent(answers, before, 'POST', `/products/${downSku}/reservations`, {
      key: 'ttl-down',
      body: { quantity: 3, ttlSeconds },
    })
  ).body;
  const expiresAtMs = Date.parse(r.expiresAt);
  const stoppedPid = ctx.app.pid;
  const stopMode = await ctx.stopApp();
  c.equal(
    'the app stopped (SIGTERM) before the TTL ran out',
    { mode: 'graceful', beforeExpiry: true },
    { mode: stopMode, beforeExpiry: Date.now() < expiresAtMs },
  );
  await waitUntil(
    () => Date.now() > expiresAtMs + downtimePastExpiryMs,
    10_000,
    'the TTL ran out while the app was stopped',
  );
  const whileDown = await productFacts(ctx.sql, downSku);
  c.equal(
    `${downSku} while the app was stopped, past expiresAt (PostgreSQL)`,
    { status: 'active', reserved: 3 },
    { status: await statusInDatabase(ctx, r.id), reserved: whileDown.reserved },
  );

  const app = await ctx.startApp();
  const readyAtMs = Date.now();
  c.that(
    'a new app process on the same database and port',
    `a pid other than ${stoppedPid}`,
    `pid ${app.pid}`,
    app.pid !== stoppedPid,
  );
  await waitUntil(
    async () => (await statusInDatabase(ctx, r.id)) === 'expired',
    expireWithinMs,
    `${downSku} reservation expired after the restart`,
  );
  const reconcileMs = Date.now() - readyAtMs;
  const after = ctx.client('c5-after');
  const inventory = await after.expect(200, 'GET', `/products/${downSku}/inventory`);
  const events = await reservationEvents(after, r.id);
  const expired = expiredEvent(events);
  c.equal(
    `${downSku} inventory after the restart`,
    { reserved: 0, available: stock, activeReservations: 0 },
    { reserved: inventory.reserved, available: inventory.available, activeReservations: inventory.activeReservations },
  );
  c.that(
    `${downSku} expired event`,
    `source sweeper, lateMs >= ${downtimePastExpiryMs}`,
    `source ${expired?.source}, lateMs ${expired?.lateMs}`,
    expired?.source === 'sweeper' && (expired.lateMs ?? 0) >= downtimePastExpiryMs,
  );
  Object.assign(c.details, {
    [`${downSku}: expired event lateMs (TTL ran out while stopped)`]: expired?.lateMs ?? '—',
    [`${downSku}: new app ready -> reservation expired (ms)`]: reconcileMs,
  });
  c.excerpt(`Audit trail of the ${downSku} reservation (GET /reservations/${r.id}/events)`, events.map(eventLine));
  return r.id;
}
