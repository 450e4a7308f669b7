import { idempotencyRetentionMs, violationsListedMax } from '../engine/limits.ts';
import { readAuditSnapshot, type AuditSnapshot } from '../persistence/audit-snapshot.ts';
import { ProductReplay } from './product-replay.ts';
import { percent, Progress } from './progress.ts';
import { checkReservationLines, overboughtLineViolations, splitCartOperationViolations } from './cart-atomicity.ts';
import { orphanEventViolations, repeatedEffectViolations, rowsWithoutProductViolations } from './query-findings.ts';
import { checkReservationHistory } from './reservation-history.ts';
import type { VerifyReport, Violation } from './verify-report.ts';

export interface VerifyOptions {
  /** Told what verify is doing, now and then on a long run (at most every progressIntervalMs). */
  onProgress?: (line: string) => void;
}

/**
 * Checks G1-G4 and G7 on a live database, as of one snapshot: every product row against its
 * reservations and its replayed events (seq, counters, hash chain), every reservation's history
 * against the lifecycle machine, every row against the existence of its product, each
 * reservation's lines against each other (one status, lines 0..n-1, none bought beyond its
 * quantity, each operation one transaction), and G2 on the idempotency keys of effects. Reads
 * everything in bounded pieces, so memory is what a piece and the listed violations take. Throws
 * when the database cannot be read; a finding is never an exception.
 */
export async function verifyDatabase(databaseUrl: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const startedMs = performance.now();
  const say = options.onProgress ?? (() => {});
  const violations: Violation[] = [];
  let unlisted = 0;
  const report = (v: Violation) => {
    if (violations.length < violationsListedMax) violations.push(v);
    else unlisted++;
  };
  const onIdleError = (error: Error) => say(`an idle database connection failed: ${error.message}`);

  const checked = await readAuditSnapshot(databaseUrl, onIdleError, async (snapshot) => {
    const sizes = await snapshot.sizes();
    const progress = new Progress(say, startedMs);
    say(
      `verifying ${sizes.products} products, ${sizes.events} events and ${sizes.reservations} reservations` +
        ' as of one snapshot',
    );
    const { products, events } = await checkProducts(snapshot, report, progress, sizes.events);
    say(`checked ${products} products and ${events} events; checking reservation histories`);
    const reservations = await checkReservations(snapshot, report, progress, sizes.reservations);
    rowsWithoutProductViolations(await snapshot.rowsWithoutProduct(violationsListedMax)).forEach(report);
    orphanEventViolations(await snapshot.orphanEvents(violationsListedMax)).forEach(report);
    await checkCarts(snapshot, report);
    const repeated = await snapshot.repeatedEffects(idempotencyRetentionMs, violationsListedMax);
    repeatedEffectViolations(repeated, idempotencyRetentionMs).forEach(report);
    return { products, events, reservations };
  });
  if (unlisted > 0) say(`${unlisted} further violations are not listed (only the first ${violationsListedMax} are)`);
  const durationMs = Math.round(performance.now() - startedMs);
  return { ok: violations.length === 0, ...checked, durationMs, violations };
}

/** G1, G4: the lines of each reservation, and the transactions of each operation on a cart. */
async function checkCarts(snapshot: AuditSnapshot, report: (v: Violation) => void): Promise<void> {
  for (const lines of await snapshot.irregularReservationLines(violationsListedMax)) {
    checkReservationLines(lines).forEach(report);
  }
  overboughtLineViolations(await snapshot.overboughtLines(violationsListedMax)).forEach(report);
  splitCartOperationViolations(await snapshot.splitCartOperations(violationsListedMax)).forEach(report);
}

/** Products in pieces; each piece's events in pages, replayed per product. */
async function checkProducts(
  snapshot: AuditSnapshot,
  report: (v: Violation) => void,
  progress: Progress,
  eventsTotal: number,
): Promise<{ products: number; events: number }> {
  let products = 0;
  let events = 0;
  for await (const piece of snapshot.productPieces()) {
    const replays = new Map(piece.map((row) => [row.sku, new ProductReplay(row, report)]));
    for await (const page of snapshot.eventPages(piece)) {
      for (const event of page) {
        // An event of no product is reported once per sku by rowsWithoutProductViolations.
        replays.get(event.sku)?.add(event);
      }
      events += page.length;
      progress.now(() => `${events} of ${eventsTotal} events (${percent(events, eventsTotal)}) checked`);
    }
    for (const replay of replays.values()) replay.finish();
    products += piece.length;
  }
  return { products, events };
}

async function checkReservations(
  snapshot: AuditSnapshot,
  report: (v: Violation) => void,
  progress: Progress,
  reservationsTotal: number,
): Promise<number> {
  let reservations = 0;
  for await (const piece of snapshot.reservationPieces()) {
    for (const history of piece) {
      for (const v of checkReservationHistory(history)) report(v);
    }
    reservations += piece.length;
    const done = () =>
      `${reservations} of ${reservationsTotal} reservation histories` +
      ` (${percent(reservations, reservationsTotal)}) checked`;
    progress.now(done);
  }
  return reservations;
}
