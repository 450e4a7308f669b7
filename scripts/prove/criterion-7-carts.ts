import { Agent } from 'undici';
import { cartDurability, cartExactlyOnce, cartsAllOrNothing } from '../lib/cart-acknowledged.ts';
import { databaseViolations, partialReservations } from '../lib/oracle.ts';
import { ApiClient, isFinal, type Answer } from '../lib/api-client.ts';
import { OperationLog, type CartLine } from '../lib/request-accounting.ts';
import { answerLine, figuresOf, tallyLine } from './answers.ts';
import { eventLine, reservationEvents } from './audit-trail.ts';
import type { ProofContext } from './context.ts';
import type { Criterion } from './criterion.ts';
import { productFacts } from './database-facts.ts';

const productCount = 20;
const stock = 30;
const cartCount = 2_000;
const connections = 1_000;
/** A 503 was not acknowledged: retried with its key for this long, as a client would. */
const retryWithinMs = 30_000;
export const cartSkus = Array.from({ length: productCount }, (_, i) => `CART-${String(i).padStart(2, '0')}`);

/**
 * Cart `i`: 2 to 4 distinct products, `cartSkus[(start + k * step) % 20]` with a step coprime with
 * 20, 1 or 2 units each; even carts list them ascending, odd ones descending, so that carts over
 * the same products take them in opposite orders.
 */
function cartOf(i: number): CartLine[] {
  const size = 2 + (i % 3);
  const start = (i * 7) % productCount;
  const step = [1, 3, 7][Math.floor(i / 3) % 3]!;
  const chosen = Array.from({ length: size }, (_, k) => cartSkus[(start + k * step) % productCount]!).sort();
  const ordered = i % 2 === 0 ? chosen : chosen.reverse();
  return ordered.map((sku, k) => ({ sku, quantity: 1 + ((i + k) % 2) }));
}

/** Sends every cart at once over `connections` connections; retries what was not acknowledged. */
async function sendCarts(ctx: ProofContext): Promise<{ log: OperationLog; wallMs: number; retried: number }> {
  const agent = new Agent({ connections, keepAliveTimeout: 10_000, connect: { timeout: 10_000 } });
  try {
    const log = new OperationLog(new ApiClient(ctx.app.url, agent, 'c7'));
    const startedMs = performance.now();
    await Promise.all(
      Array.from({ length: cartCount }, (_, i) =>
        log.send(log.start({ kind: 'cart-reserve', key: `c7-cart-${i}`, lines: cartOf(i), ttlSeconds: 600 })),
      ),
    );
    const retried = (await log.retryOpen(retryWithinMs)).length;
    return { log, wallMs: performance.now() - startedMs, retried };
  } finally {
    await agent.close();
  }
}

/** Units the 201 carts hold of each product. */
function heldByProduct(log: OperationLog): Map<string, number> {
  const held = new Map(cartSkus.map((sku) => [sku, 0]));
  for (const e of log.attempted) {
    if (e.op.kind !== 'cart-reserve' || e.answers.find(isFinal)?.status !== 201) continue;
    for (const l of e.op.lines) held.set(l.sku, held.get(l.sku)! + l.quantity);
  }
  return held;
}

/** All or nothing and no oversell over the burst, from the answers and from PostgreSQL (returns units oversold). */
async function checkBurst(ctx: ProofContext, c: Criterion, log: OperationLog): Promise<number> {
  const finals = log.attempted.map((e) => e.answers.find(isFinal)).filter((a): a is Answer => a !== undefined);
  const whole = await cartsAllOrNothing(ctx.sql, log.attempted);
  c.that(
    'cart answers',
    `201 or 409 insufficient_stock, ${cartCount} in all`,
    tallyLine(finals),
    whole.unexpected.length === 0 && whole.reserved + whole.refused === cartCount,
  );
  c.atLeast('carts reserved whole: 201, every line as sent, active', 1, whole.reserved);
  c.atLeast('carts refused whole: 409 insufficient_stock listing only short lines of the cart', 1, whole.refused);
  c.equal(
    'carts answered otherwise (a line missing, a short line not of the cart, another status)',
    [],
    whole.unexpected.slice(0, 3),
  );
  c.equal('refused carts without a rejected event on every product they named', [], whole.unaudited.slice(0, 3));
  const durable = await cartDurability(ctx.sql, log.attempted);
  c.equal(
    '201 carts whose reservation rows in PostgreSQL are not exactly their lines (id, one row per SKU, quantities)',
    [],
    durable.missing.slice(0, 3),
  );
  c.equal(
    'partial reservations in PostgreSQL (rows disagreeing on status or expiry, or not one per line)',
    [],
    partialReservations(await databaseViolations(ctx.sql))
      .map((v) => v.message)
      .slice(0, 3),
  );
  const once = await cartExactlyOnce(ctx.sql, log.attempted, cartSkus);
  c.equal(
    'carts whose reserved events are not one per line from one request (or a 409 with any)',
    [],
    once.notOnce.slice(0, 3),
  );
  c.equal(
    'reservation rows of these products that no client was answered 201 for',
    [],
    once.unexplainedReservations.slice(0, 3),
  );

  const held = heldByProduct(log);
  let oversold = 0;
  const counterMismatch: string[] = [];
  for (const sku of cartSkus) {
    const facts = await productFacts(ctx.sql, sku);
    oversold += facts.oversoldUnits + Math.max(0, held.get(sku)! - stock);
    if (facts.reserved !== held.get(sku) || facts.purchased !== 0 || facts.total !== stock)
      counterMismatch.push(`${sku}: row ${facts.reserved}, 201 lines ${held.get(sku)}`);
  }
  c.equal('products whose reserved counter is not the sum of their lines in 201 carts', [], counterMismatch);
  c.equal(
    'units oversold over the 20 products (reserved + purchased - total, and 201 lines beyond stock)',
    0,
    oversold,
  );
  c.details['products sold out or within one unit of it'] = [...held.values()].filter((n) => n >= stock - 1).length;
  c.details['units reserved in 201 carts (of 600)'] = [...held.values()].reduce((a, b) => a + b, 0);
  return oversold;
}

/** One 201 cart bought in part, another cancelled: their answers, counters and audit trails. */
async function buyAndCancel(ctx: ProofContext, c: Criterion, log: OperationLog): Promise<Answer[]> {
  const reserved = log.attempted.flatMap((e) => {
    const final = e.answers.find(isFinal);
    return e.op.kind === 'cart-reserve' && final?.status === 201
      ? [{ lines: e.op.lines, id: String(final.body.id) }]
      : [];
  });
  // A cart of several lines whose first line holds 2 units shows both: part of a line bought, whole lines released.
  const toBuy = reserved.find((r) => r.lines.length >= 3 && r.lines[0]!.quantity > 1) ?? reserved[0];
  const toCancel = reserved.find((r) => r !== toBuy && r.lines.length >= 3) ?? reserved.find((r) => r !== toBuy);
  if (toBuy === undefined || toCancel === undefined) throw new Error('fewer than two carts were reserved');
  const client = ctx.client('c7-after');
  const [first, ...rest] = toBuy.lines;
  const facts = async (lines: readonly CartLine[]) =>
    Promise.all(
      lines.map(async (l) => {
        const f = await productFacts(ctx.sql, l.sku);
        return { sku: l.sku, reserved: f.reserved, purchased: f.purchased };
      }),
    );

  const beforeBuy = await facts(toBuy.lines);
  const bought = await client.send('POST', `/reservations/${toBuy.id}/purchase`, {
    key: 'c7-buy-part',
    body: { lines: [{ sku: first!.sku, quantity: 1 }] },
  });
  c.equal(
    `partial purchase of a ${toBuy.lines.length}-line cart: 1 unit of ${first!.sku}, none of the rest`,
    { status: 200, reservation: 'purchased', purchasedQuantity: [1, ...rest.map(() => 0)] },
    {
      status: bought.status,
      reservation: bought.body?.status,
      purchasedQuantity: (bought.body?.lines ?? []).map((l: { purchasedQuantity?: number }) => l.purchasedQuantity),
    },
  );
  c.equal(
    "its products' counters: the unit bought moves to purchased, every other unit returns to available",
    beforeBuy.map((b, k) => ({
      sku: b.sku,
      reserved: b.reserved - toBuy.lines[k]!.quantity,
      purchased: b.purchased + (k === 0 ? 1 : 0),
    })),
    await facts(toBuy.lines),
  );
  const buyEvents = (await reservationEvents(client, toBuy.id)).filter((e) => e.type !== 'reserved');
  c.equal(
    'its events after the reserved ones (type, sku, quantity)',
    [
      ...(first!.quantity > 1
        ? [
            ['purchased', first!.sku, 1],
            ['released', first!.sku, first!.quantity - 1],
          ]
        : [['purchased', first!.sku, 1]]),
      ...rest.map((l) => ['released', l.sku, l.quantity]),
    ].sort(),
    buyEvents.map((e) => [e.type, e.sku, e.quantity]).sort(),
  );

  const beforeCancel = await facts(toCancel.lines);
  const cancelled = await client.send('POST', `/reservations/${toCancel.id}/cancel`, { key: 'c7-cancel' });
  c.equal(
    `cancel of a ${toCancel.lines.length}-line cart`,
    { status: 200, reservation: 'cancelled' },
    { status: cancelled.status, reservation: cancelled.body?.status },
  );
  c.equal(
    "its products' counters: every line returns to available",
    beforeCancel.map((b, k) => ({
      sku: b.sku,
      reserved: b.reserved - toCancel.lines[k]!.quantity,
      purchased: b.purchased,
    })),
    await facts(toCancel.lines),
  );
  const cancelEvents = await reservationEvents(client, toCancel.id);
  c.equal(
    'its events (type per line, in commit order)',
    [...toCancel.lines.map(() => 'reserved'), ...toCancel.lines.map(() => 'cancelled')],
    cancelEvents.map((e) => e.type),
  );
  c.excerpt('The partial purchase and the cancel', [bought, cancelled].map(answerLine));
  c.excerpt(
    `Audit trail of the cart bought in part (GET /reservations/${toBuy.id}/events)`,
    (await reservationEvents(client, toBuy.id)).map(eventLine),
  );
  c.excerpt(`Audit trail of the cancelled cart (GET /reservations/${toCancel.id}/events)`, cancelEvents.map(eventLine));
  return [bought, cancelled];
}

/**
 * Criterion 7: carts, reservations of several products, all or nothing. 2,000 carts of 2-4 lines
 * sent at once over 1,000 connections to 20 products of 30 units: each cart is reserved whole or
 * refused whole, no product is oversold, and the database holds exactly the carts answered 201.
 * Then one cart is bought in part and another cancelled.
 */
export async function carts(ctx: ProofContext, c: Criterion): Promise<void> {
  // Criterion 6 stopped the app for its final verify; carts need one running.
  if (!ctx.app.running) await ctx.startApp();
  const n = (value: number) => value.toLocaleString('en');
  c.done.push(
    `Created ${productCount} products \`${cartSkus[0]}\` .. \`${cartSkus.at(-1)}\` with stock ${stock} each ` +
      `(${productCount * stock} units in all).`,
    `Opened up to ${n(connections)} connections and sent ${n(cartCount)} \`POST /reservations\` at once, each a cart ` +
      'of 2-4 lines of 1-2 units (`{"lines":[{"sku","quantity"}, ...],"ttlSeconds":600}`) with its own ' +
      'Idempotency-Key; half list their products ascending, half descending, over the same products.',
    'Compared every answer with the product rows, the reservation rows and the audit events in PostgreSQL.',
    'Then bought one 201 cart in part (`POST /reservations/{id}/purchase` with 1 unit of its first line) and ' +
      'cancelled another, and read both audit trails.',
  );
  c.expected.push(
    'Every cart answered 201 with all its lines, or 409 `insufficient_stock` listing short lines of its own; ' +
      'nothing else. No reservation row of a refused cart.',
    "No oversell: every product's reserved counter is the sum of its lines in 201 carts, at most its stock; " +
      'each 201 cart is one row per line, same id, active, with one `reserved` event per line.',
    'The partial purchase: `purchased` of 1 unit and `released` of the rest, on every product of the cart in one ' +
      'step; the cancel: `cancelled` on every product.',
  );
  const setup = ctx.client('c7-setup');
  for (const sku of cartSkus) await setup.expect(201, 'POST', '/products', { body: { sku, name: sku, stock } });
  const { log, wallMs, retried } = await sendCarts(ctx);
  const oversold = await checkBurst(ctx, c, log);
  const followUps = await buyAndCancel(ctx, c, log);
  c.figures = figuresOf([...log.answers(), ...followUps], wallMs, oversold);
  Object.assign(c.details, {
    'carts naming their products in descending order': Array.from({ length: cartCount }, (_, i) => cartOf(i)).filter(
      (l) => l[0]!.sku > l.at(-1)!.sku,
    ).length,
    'carts per second': Math.round(cartCount / (wallMs / 1000)),
    'carts answered 503 first and retried with their keys': retried,
  });
  c.notes.push(
    "A cart holds its products' actors in SKU order, whatever the order of its lines, and commits all of them in one " +
      'transaction, so a cart waits for the carts before it on any of its products: the latency is mostly that queue.',
  );
}
