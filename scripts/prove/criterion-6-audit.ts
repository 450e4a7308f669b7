import { answerLine } from './answers.ts';
import { eventLine, productEvents, reservationEvents, type AuditEvent } from './audit-trail.ts';
import type { ProofContext } from './context.ts';
import type { Criterion } from './criterion.ts';
import type { FlashSaleEvidence } from './criterion-1-flash-sale.ts';
import type { DuplicatePurchaseEvidence } from './criterion-3-duplicate-purchases.ts';
import { killSkus, type DatabaseKilledEvidence } from './criterion-4-database-killed.ts';
import type { ExpiryEvidence } from './criterion-5-expiry.ts';
import type { ApiClient } from '../lib/api-client.ts';
import { productsByCheck } from '../lib/oracle.ts';
import { accountFor, failureLinesByRequestId, type AccountedAnswer } from './audit-accounting.ts';
import { excerptOf } from './server-log.ts';

export interface AuditInputs {
  readonly flash: FlashSaleEvidence | undefined;
  readonly purchases: DuplicatePurchaseEvidence | undefined;
  readonly killed: DatabaseKilledEvidence | undefined;
  readonly expiry: ExpiryEvidence | undefined;
}

const skus = ['FLASH-1', 'DUP-RESERVE', 'DUP-BUY', 'DUP-CANCEL', ...killSkus, 'TTL-LIVE', 'TTL-DOWN'];

function countBy<T>(items: readonly T[], key: (item: T) => string | undefined): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) {
    const k = key(item);
    if (k !== undefined) counts[k] = (counts[k] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * Criterion 6: failures are auditable. Everything is read back through the audit API (and the
 * server's own log for what never reached the database), then matched request by request.
 */
export async function auditability(ctx: ProofContext, c: Criterion, inputs: AuditInputs): Promise<void> {
  c.done.push(
    `Read every product's audit trail back through \`GET /products/{sku}/events\` (pages of 1,000): ${skus.map((s) => `\`${s}\``).join(', ')}.`,
    'Matched each of the 10,000 answers of criterion 1 to its audit event by x-request-id.',
    "Matched each answer of criterion 4 either to the server's structured log line (503s: nothing reached the database) or to an audit event (executed requests; replays by their key's first execution).",
    'Stopped the app (SIGTERM) and ran `verifyDatabase` and the independent SQL oracle on the final database.',
  );
  c.expected.push(
    'Every rejection is an audit event of type `rejected` with its `code`; every expiry an `expired` event with `source: sweeper` and `lateMs`.',
    'Every 503 of criterion 4 has a log line with its requestId, idempotencyKey, code and reason; every other answer has its audit event: together they account for every request, and nothing in either is unexplained.',
    '`verifyDatabase` passes on the final database.',
  );
  const startedMs = performance.now();
  const client = ctx.client('c6');
  const events = new Map<string, AuditEvent[]>();
  for (const sku of skus) events.set(sku, await productEvents(client, sku));
  const byProduct = skus.map((sku) => {
    const list = events.get(sku)!;
    return `${sku.padEnd(12)} ${String(list.length).padStart(6)} events  ${JSON.stringify(countBy(list, (e) => e.type))}  rejected by code ${JSON.stringify(countBy(list, (e) => e.code))}`;
  });
  c.excerpt('Audit events per product, by type, and rejections by code (through the audit API)', byProduct);

  const flash = inputs.flash?.answers ?? [];
  const flashEvents = new Map(events.get('FLASH-1')!.map((e) => [e.requestId, e]));
  c.equal(
    'criterion 1: 409 answers matched to a rejected event (same request id, code insufficient_stock)',
    9_000,
    flash.filter(
      (a) =>
        a.status === 409 &&
        flashEvents.get(a.requestId)?.type === 'rejected' &&
        flashEvents.get(a.requestId)?.code === 'insufficient_stock',
    ).length,
  );
  c.equal(
    'criterion 1: 201 answers matched to a reserved event (same request id and reservation id)',
    1_000,
    flash.filter(
      (a) =>
        a.status === 201 &&
        flashEvents.get(a.requestId)?.type === 'reserved' &&
        flashEvents.get(a.requestId)?.reservationId === a.body.id,
    ).length,
  );

  await rejectionsAndExpiries(c, client, events, inputs);
  const accounted = accountForOutage(c, ctx, events, inputs.killed);

  const stopMode = await ctx.stopApp();
  c.equal('the app stopped before the final verify', 'graceful', stopMode);
  // The final database is checked by verify and by the oracle after this criterion, as after every other.
  const oversoldProducts = productsByCheck(await ctx.oracle()).oversold;
  const examined = [...flash, ...accounted.map((a) => a.answer)];
  c.figures = {
    requests: examined.length,
    successes: examined.filter((a) => a.status !== null && a.status < 300).length,
    rejections: examined.filter((a) => a.status !== null && a.status >= 400 && a.status < 500).length,
    oversells: oversoldProducts,
    latency: null,
    wallMs: performance.now() - startedMs,
  };
}

async function rejectionsAndExpiries(
  c: Criterion,
  client: ApiClient,
  events: Map<string, AuditEvent[]>,
  inputs: AuditInputs,
): Promise<void> {
  const all = [...events.values()].flat();
  c.equal(
    'rejected events by code, all products',
    { insufficient_stock: 9_000, reservation_cancelled: 1, reservation_expired: 1, reservation_purchased: 1 },
    countBy(all, (e) => e.code),
  );
  const expired = all.filter((e) => e.type === 'expired');
  c.that(
    'expired events',
    '2, both source sweeper, lateMs set',
    `${expired.length}: ${expired.map((e) => `${e.sku} source ${e.source} lateMs ${e.lateMs}`).join('; ')}`,
    expired.length === 2 && expired.every((e) => e.source === 'sweeper' && e.lateMs !== undefined),
  );
  const lines: string[] = [];
  const firstRejected = events.get('FLASH-1')!.find((e) => e.type === 'rejected');
  if (firstRejected !== undefined) lines.push(eventLine(firstRejected));
  if (inputs.purchases !== undefined) {
    for (const id of [inputs.purchases.cancelledId, inputs.purchases.purchasedId]) {
      lines.push(...(await reservationEvents(client, id)).filter((e) => e.type === 'rejected').map(eventLine));
    }
  }
  for (const id of inputs.expiry?.expiredIds ?? [])
    lines.push(
      ...(await reservationEvents(client, id))
        .filter((e) => e.type === 'expired' || e.type === 'rejected')
        .map(eventLine),
    );
  c.excerpt('Rejections and expiries in the audit trail (excerpt)', lines);
}

function accountForOutage(
  c: Criterion,
  ctx: ProofContext,
  events: Map<string, AuditEvent[]>,
  killed: DatabaseKilledEvidence | undefined,
): AccountedAnswer[] {
  if (killed === undefined) {
    c.that('criterion 4 ran', 'its requests to account for', 'criterion 4 did not run to its end', false);
    return [];
  }
  const serverLines = ctx.logBook.all().filter((l) => l.server === killed.appName);
  const failures = failureLinesByRequestId(serverLines);
  const accounted = accountFor(
    killed.attempted,
    killSkus.flatMap((sku) => events.get(sku)!),
    failures,
  );
  const by = countBy(accounted, (a) => a.account.by);
  const unaccounted = accounted.filter((a) => a.account.by === 'none');
  c.that(
    `criterion 4: requests accounted for by the log or the audit trail`,
    `${accounted.length} of ${accounted.length}`,
    `${accounted.length - unaccounted.length} of ${accounted.length} (${Object.entries(by)
      .map(([k, n]) => `${k}: ${n}`)
      .join(
        ', ',
      )})${unaccounted.length > 0 && unaccounted[0]!.account.by === 'none' ? `; first hole: ${unaccounted[0]!.account.why}` : ''}`,
    unaccounted.length === 0,
  );
  const logged = accounted.filter((a) => a.account.by === 'log');
  const complete = logged.filter(
    ({ account }) =>
      account.by === 'log' &&
      ['requestId', 'idempotencyKey', 'code', 'reason'].every((f) => account.line.fields[f] !== undefined),
  );
  c.equal(
    'criterion 4: 503 log lines carrying requestId, idempotencyKey, code and reason',
    logged.length,
    complete.length,
  );
  // The other direction: nothing in the log or the trail that no request of the clients explains.
  const answeredIds = new Set(killed.attempted.flatMap((e) => e.answers.map((a) => a.requestId)));
  const strayLines = serverLines.filter(
    (l) =>
      l.msg === 'command not acknowledged' &&
      !(typeof l.fields.requestId === 'string' && answeredIds.has(l.fields.requestId)),
  );
  c.that(
    'criterion 4: failure log lines that match no request of the clients',
    '0',
    `${strayLines.length}${strayLines[0] === undefined ? '' : ` e.g. ${excerptOf(strayLines[0])}`}`,
    strayLines.length === 0,
  );
  const strayEvents = killSkus
    .flatMap((sku) => events.get(sku)!)
    .filter((e) => e.requestId === undefined || !answeredIds.has(e.requestId));
  c.that(
    'criterion 4: audit events of PGKILL-* that match no request of the clients',
    '0',
    `${strayEvents.length}${strayEvents[0] === undefined ? '' : ` e.g. ${eventLine(strayEvents[0])}`}`,
    strayEvents.length === 0,
  );
  const inDoubt = logged.filter(({ account }) => account.by === 'log' && account.alsoCommitted !== undefined).length;
  Object.assign(c.details, {
    'criterion 4 answers accounted by a log line (503)': by.log ?? 0,
    'criterion 4 answers accounted by their own audit event': by.event ?? 0,
    "criterion 4 answers accounted as replays of their key's event": by.replay ?? 0,
    '503s whose command had committed after all (in doubt; the retry replayed it)': inDoubt,
  });
  c.excerpt(
    'One retried purchase, request by request: each answer and the record that accounts for it',
    storyOf(accounted),
  );
  return accounted;
}

/** The answers of one operation that met the outage and then succeeded, each beside its record. */
function storyOf(accounted: readonly AccountedAnswer[]): string[] {
  const story = accounted.find(
    (a) =>
      a.attempted.op.kind === 'purchase' && a.account.by === 'log' && a.attempted.answers.some((x) => x.status === 200),
  );
  if (story === undefined) return [];
  return accounted
    .filter((a) => a.attempted === story.attempted)
    .flatMap((a) => {
      const record =
        a.account.by === 'log'
          ? `log:   ${excerptOf(a.account.line)}`
          : a.account.by === 'none'
            ? `NONE:  ${a.account.why}`
            : `audit: ${eventLine(a.account.event)}`;
      return [`answer: ${answerLine(a.answer)}`, `  ${record}`];
    });
}
