import type { OrphanEvent, RepeatedEffect, RowsWithoutProduct } from '../persistence/audit-snapshot.ts';
import type { Violation } from './verify-report.ts';

// Checks the database answers as one set-based query each; their rows are already the findings.

/** G7 or G4: rows of the three high-volume tables whose product does not exist. */
export function rowsWithoutProductViolations(found: readonly RowsWithoutProduct[]): Violation[] {
  return found.map((r) => ({
    // An event of no product breaks the log; a reservation or an idempotency record of no product
    // was written outside the product's transaction.
    guarantee: r.table === 'inventory_events' ? 'G7' : 'G4',
    sku: r.sku,
    message: `${r.rows} ${r.table} rows belong to this sku, but no product row does`,
  }));
}

/** G7: an event names a reservation that does not exist. */
export function orphanEventViolations(found: readonly OrphanEvent[]): Violation[] {
  return found.map((o) => ({
    guarantee: 'G7',
    sku: o.sku,
    reservationId: o.reservationId,
    message: `seq ${o.seq} (${o.type}) names reservation ${o.reservationId}, which does not exist`,
  }));
}

/** G2: a key took effect twice while the first effect's idempotency record had to exist (`retentionMs`). */
export function repeatedEffectViolations(found: readonly RepeatedEffect[], retentionMs: number): Violation[] {
  const hours = retentionMs / 3_600_000;
  return found.map((r) => ({
    guarantee: 'G2',
    sku: r.sku,
    message:
      `Idempotency-Key ${JSON.stringify(r.idempotencyKey)} took effect twice within ${hours} h: ` +
      `seq ${r.previousSeq} and seq ${r.seq}`,
  }));
}
