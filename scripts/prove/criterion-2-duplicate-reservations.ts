import { answerLine, figuresOf, tallyLine } from './answers.ts';
import { eventLine, productEvents } from './audit-trail.ts';
import type { ProofContext } from './context.ts';
import type { Criterion } from './criterion.ts';
import { productFacts, storedOutcome } from './database-facts.ts';

const sku = 'DUP-RESERVE';
const stock = 50;
const quantity = 3;
const copies = 200;
const key = 'order-dup-1';

/**
 * Criterion 2: a client whose reservation request is duplicated (a retrying proxy, a double
 * click) 200 times at once, all with one Idempotency-Key. One reservation, every answer the same.
 */
export async function duplicateReservations(ctx: ProofContext, c: Criterion): Promise<void> {
  c.done.push(
    `Created product \`${sku}\` with stock ${stock}.`,
    `Sent the same \`POST /products/${sku}/reservations\` \`{"quantity":${quantity}}\` with \`Idempotency-Key: ${key}\` ${copies} times at once (each copy with its own x-request-id).`,
  );
  c.expected.push(
    `One reservation; all ${copies} answers 201 with the same body (${copies - 1} of them marked \`idempotent-replayed: true\`).`,
    `Stock moved once: reserved ${quantity}, available ${stock - quantity}; one \`reserved\` audit event for the key.`,
  );
  const client = ctx.client('c2');
  await client.expect(201, 'POST', '/products', { body: { sku, name: 'Duplicated order', stock } });
  const startedMs = performance.now();
  const answers = await Promise.all(
    Array.from({ length: copies }, () =>
      client.send('POST', `/products/${sku}/reservations`, { key, body: { quantity } }),
    ),
  );
  const wallMs = performance.now() - startedMs;

  c.that(
    'all answers',
    `201: ${copies}`,
    tallyLine(answers),
    answers.every((a) => a.status === 201),
  );
  c.equal('distinct answer bodies', 1, new Set(answers.map((a) => JSON.stringify(a.body))).size);
  c.equal('answers marked idempotent-replayed: true', copies - 1, answers.filter((a) => a.replayed).length);
  const id = answers.find((a) => a.status === 201)?.body.id as string | undefined;

  const inventory = await client.expect(200, 'GET', `/products/${sku}/inventory`);
  c.equal(
    'GET /products/DUP-RESERVE/inventory',
    { reserved: quantity, available: stock - quantity, activeReservations: 1 },
    { reserved: inventory.reserved, available: inventory.available, activeReservations: inventory.activeReservations },
  );
  const facts = await productFacts(ctx.sql, sku);
  c.equal('reservation rows in PostgreSQL', { active: 1 }, facts.reservationsByStatus);
  c.equal(
    'product row: reserved, sum over reservation rows',
    { reserved: quantity, activeSum: quantity },
    { reserved: facts.reserved, activeSum: facts.activeSum },
  );
  c.equal('audit events by type', { product_created: 1, reserved: 1 }, facts.eventsByType);
  const outcome = await storedOutcome(ctx.sql, sku, key);
  c.equal('stored outcome of the key names the one reservation', id, outcome?.reservation?.id);

  const events = await productEvents(client, sku);
  const reservedEvent = events.find((e) => e.type === 'reserved');
  c.that(
    'the reserved event carries the key and the request id of one of the 200 copies',
    `key ${key}, one of c2-2 .. c2-${copies + 1}`,
    `key ${reservedEvent?.idempotencyKey}, ${reservedEvent?.requestId}`,
    reservedEvent?.idempotencyKey === key && answers.some((a) => a.requestId === reservedEvent.requestId),
  );

  c.figures = figuresOf(answers, wallMs, facts.oversoldUnits);
  Object.assign(c.details, {
    'executed (first) / replayed': `${answers.filter((a) => !a.replayed).length} / ${answers.filter((a) => a.replayed).length}`,
  });
  const first = answers.find((a) => !a.replayed);
  const replay = answers.find((a) => a.replayed);
  c.excerpt(
    'Answers (the executed one, then a replay)',
    [first, replay].filter((a) => a !== undefined).map(answerLine),
  );
  c.excerpt(`Audit trail of ${sku} (GET /products/${sku}/events)`, events.map(eventLine));
}
