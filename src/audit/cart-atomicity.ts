import type { OverboughtLine, ReservationLines, SplitCartOperation } from '../persistence/audit-snapshot.ts';
import type { Violation } from './verify-report.ts';

// A reservation of several lines (a cart) is one thing in many rows, on many products: all of its
// lines share one status, its rows are exactly its lines, and each operation on it is one
// transaction (docs/API.md, Reservations). These checkers explain what the grouped reads of
// src/persistence/sql/verify.ts found; they decide nothing the reads did not select.

/** The product a finding about a whole reservation is listed under: its first SKU in SKU order. */
function firstSku(skus: readonly string[]): string | null {
  return [...skus].sort()[0] ?? null;
}

/**
 * G4: the rows of one reservation are one set of lines in one status. Says which of the rules the
 * rows break: their statuses differ; they disagree on how many lines there are; their number is
 * not that count; their line numbers are not 0..count-1. None when the rows are regular.
 */
export function checkReservationLines(r: ReservationLines): Violation[] {
  const found: Violation[] = [];
  const violation = (message: string) => {
    found.push({ guarantee: 'G4', sku: firstSku(r.skus), reservationId: r.id, message });
  };
  const rows = r.skus.length;
  if (new Set(r.statuses).size > 1) {
    const each = r.skus.map((sku, i) => `${sku} ${r.statuses[i]}`).join(', ');
    violation(`its lines disagree on its status (${each}): all lines of a reservation share one status`);
  }
  const counts = [...new Set(r.lines)];
  if (counts.length > 1) {
    violation(`its rows disagree on how many lines it has (${counts.join(', ')})`);
    return found;
  }
  const lines = counts[0] ?? 0;
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  if (rows !== lines) violation(`it has ${plural(rows, 'row')}, but ${plural(lines, 'line')}`);
  const expected = Array.from({ length: rows }, (_, i) => i);
  if (r.lineNumbers.some((n, i) => n !== expected[i])) {
    violation(`its line numbers are ${r.lineNumbers.join(', ')}; ${rows} rows are lines 0..${rows - 1}, each once`);
  }
  return found;
}

/**
 * G1: a line buys at most what it reserved. Buying more would take stock that was never held for
 * it, which is overselling by another name (the product's counters could still add up).
 */
export function overboughtLineViolations(found: readonly OverboughtLine[]): Violation[] {
  return found.map((l) => ({
    guarantee: 'G1',
    sku: l.sku,
    reservationId: l.id,
    message: `its line bought ${l.purchasedQuantity} of the ${l.quantity} it reserved`,
  }));
}

/** G4: one operation on a cart is one transaction that writes on every one of its products. */
export function splitCartOperationViolations(found: readonly SplitCartOperation[]): Violation[] {
  return found.map((o) => ({
    guarantee: 'G4',
    sku: firstSku(o.skus),
    reservationId: o.reservationId,
    message:
      `its ${o.type} events at ${new Date(o.atMs).toISOString()} ` +
      `(${o.skus.map((sku, i) => `${sku} seq ${o.seqs[i]}`).join(', ')}) were written by a transaction that ` +
      `wrote on ${new Set(o.skus).size} of its ${o.lines} products: one operation on a reservation is one ` +
      'transaction over all of them',
  }));
}
