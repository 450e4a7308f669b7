import { answerLine, figuresOf, tallyLine } from './answers.ts';
import { eventLine, reservationEvents } from './audit-trail.ts';
import type { ProofContext } from './context.ts';
import type { Criterion } from './criterion.ts';
import { productFacts } from './database-facts.ts';
import type { Answer, ApiClient } from '../lib/api-client.ts';

const buySku = 'DUP-BUY';
const cancelSku = 'DUP-CANCEL';
const stock = 10;
const quantity = 4;
const copies = 200;

export interface DuplicatePurchaseEvidence {
  /** The reservations of this criterion, whose audit trails criterion 6 shows. */
  readonly purchasedId: string;
  readonly cancelledId: string;
}

/** `copies` identical finishing requests at once: half carry one Idempotency-Key, half none (lifecycle replay). */
function finishAtOnce(client: ApiClient, id: string, action: 'purchase' | 'cancel'): Promise<Answer[]> {
  return Promise.all(
    Array.from({ length: copies }, (_, i) =>
      client.send('POST', `/reservations/${id}/${action}`, i % 2 === 0 ? { key: `${action}-dup-1` } : {}),
    ),
  );
}

/**
 * Criterion 3: the purchase of one reservation sent 200 times at once is applied once; so is a
 * cancel. Purchasing the cancelled one and cancelling the purchased one are refused with a code.
 */
export async function duplicatePurchases(ctx: ProofContext, c: Criterion): Promise<DuplicatePurchaseEvidence> {
  c.done.push(
    `Created \`${buySku}\` and \`${cancelSku}\` with stock ${stock} each and reserved ${quantity} of each.`,
    `Sent \`POST /reservations/{id}/purchase\` for the \`${buySku}\` reservation ${copies} times at once (half with one Idempotency-Key, half with none: purchase is idempotent by the lifecycle itself).`,
    `Sent \`POST /reservations/{id}/cancel\` for the \`${cancelSku}\` reservation ${copies} times at once, the same way.`,
    'Then tried to purchase the cancelled reservation and to cancel the purchased one.',
  );
  c.expected.push(
    `Every purchase answer 200 with one identical body (status \`purchased\`); stock moved once: reserved 0, purchased ${quantity}, available ${stock - quantity}; one \`purchased\` event.`,
    `Every cancel answer 200 with one identical body (status \`cancelled\`); stock back once: available ${stock}; one \`cancelled\` event.`,
    'The cross attempts refused with 409 `reservation_cancelled` and 409 `reservation_purchased`, each recorded as a `rejected` audit event.',
  );
  const client = ctx.client('c3');
  for (const sku of [buySku, cancelSku])
    await client.expect(201, 'POST', '/products', { body: { sku, name: sku, stock } });
  const toBuy = await client.expect(201, 'POST', `/products/${buySku}/reservations`, {
    key: 'dup-buy-r',
    body: { quantity },
  });
  const toCancel = await client.expect(201, 'POST', `/products/${cancelSku}/reservations`, {
    key: 'dup-cancel-r',
    body: { quantity },
  });

  const startedMs = performance.now();
  const [purchases, cancels] = await Promise.all([
    finishAtOnce(client, toBuy.id, 'purchase'),
    finishAtOnce(client, toCancel.id, 'cancel'),
  ]);
  const wallMs = performance.now() - startedMs;
  const crossBuy = await client.send('POST', `/reservations/${toCancel.id}/purchase`);
  const crossCancel = await client.send('POST', `/reservations/${toBuy.id}/cancel`);

  c.that(
    'purchase answers',
    `200: ${copies}`,
    tallyLine(purchases),
    purchases.every((a) => a.status === 200 && a.body.status === 'purchased'),
  );
  c.equal('distinct purchase answer bodies', 1, new Set(purchases.map((a) => JSON.stringify(a.body))).size);
  c.that(
    'cancel answers',
    `200: ${copies}`,
    tallyLine(cancels),
    cancels.every((a) => a.status === 200 && a.body.status === 'cancelled'),
  );
  c.equal('distinct cancel answer bodies', 1, new Set(cancels.map((a) => JSON.stringify(a.body))).size);
  c.equal(
    'purchase of the cancelled reservation',
    '409 reservation_cancelled',
    `${crossBuy.status} ${crossBuy.body?.code}`,
  );
  c.equal(
    'cancel of the purchased reservation',
    '409 reservation_purchased',
    `${crossCancel.status} ${crossCancel.body?.code}`,
  );

  const bought = await productFacts(ctx.sql, buySku);
  const cancelled = await productFacts(ctx.sql, cancelSku);
  c.equal(
    `${buySku} row in PostgreSQL`,
    { reserved: 0, purchased: quantity, available: stock - quantity },
    { reserved: bought.reserved, purchased: bought.purchased, available: bought.available },
  );
  c.equal(
    `${buySku} audit events by type`,
    { product_created: 1, purchased: 1, rejected: 1, reserved: 1 },
    bought.eventsByType,
  );
  c.equal(
    `${cancelSku} row in PostgreSQL`,
    { reserved: 0, purchased: 0, available: stock },
    { reserved: cancelled.reserved, purchased: cancelled.purchased, available: cancelled.available },
  );
  c.equal(
    `${cancelSku} audit events by type`,
    { cancelled: 1, product_created: 1, rejected: 1, reserved: 1 },
    cancelled.eventsByType,
  );

  const all = [...purchases, ...cancels, crossBuy, crossCancel];
  c.figures = figuresOf(all, wallMs, bought.oversoldUnits + cancelled.oversoldUnits);
  Object.assign(c.details, {
    'purchase answers marked idempotent-replayed (keyed copies)': purchases.filter((a) => a.replayed).length,
    'cancel answers marked idempotent-replayed (keyed copies)': cancels.filter((a) => a.replayed).length,
  });
  c.excerpt(
    'Answers (a purchase, a cancel, the two refusals)',
    [purchases[0], cancels[0], crossBuy, crossCancel].filter((a) => a !== undefined).map(answerLine),
  );
  c.excerpt(
    `Audit trail of the purchased reservation (GET /reservations/${toBuy.id}/events)`,
    (await reservationEvents(client, toBuy.id)).map(eventLine),
  );
  c.excerpt(
    `Audit trail of the cancelled reservation (GET /reservations/${toCancel.id}/events)`,
    (await reservationEvents(client, toCancel.id)).map(eventLine),
  );
  return { purchasedId: toBuy.id, cancelledId: toCancel.id };
}
