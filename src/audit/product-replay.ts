import { eventHash, genesisHash } from '../engine/event-hash.ts';
import { stockAfter, type Stock } from '../engine/replay.ts';
import type { AuditEvent } from '../engine/types.ts';
import type { ProductRow } from '../persistence/audit-snapshot.ts';
import type { Violation } from './verify-report.ts';

const show = (c: Stock) => `total/reserved/purchased ${c.total}/${c.reserved}/${c.purchased}`;
const same = (a: Stock, b: Stock) => a.total === b.total && a.reserved === b.reserved && a.purchased === b.purchased;

/** Fields an event's type cannot do without; null when it has them. */
function missingField(e: AuditEvent): string | null {
  const needsReservation =
    e.type === 'reserved' || e.type === 'purchased' || e.type === 'cancelled' || e.type === 'expired';
  if (needsReservation && (e.reservationId === null || e.quantity === null || e.quantity < 1))
    return 'a reservation id and a positive quantity';
  if (e.type === 'expired' && (e.lateMs === null || e.lateMs < 0)) return 'lateMs >= 0';
  if (e.type === 'stock_adjusted' && (e.delta === null || e.delta === 0)) return 'a non-zero delta';
  if (e.type === 'rejected' && e.code === null) return 'a code';
  return null;
}

/**
 * Replays one product's events, fed in seq order, against its row: G1 and G3 on the row and on
 * every event, G4 (counters = sums over its reservation rows), and G7 (seq gap-free 1..version,
 * each event's counters following from the one before, the hash chain, the last event = the row).
 * Pure and O(1) in memory however many events the product has.
 */
export class ProductReplay {
  private expectedSeq = 1;
  private previous: Stock | null = null;
  private previousHash = genesisHash;
  private lastSeq = 0;
  private eventsSeen = 0;

  constructor(
    private readonly row: ProductRow,
    private readonly report: (violation: Violation) => void,
  ) {
    this.checkRow();
  }

  add(e: AuditEvent): void {
    this.eventsSeen++;
    const gap = e.seq !== this.expectedSeq;
    if (gap) {
      this.violation(
        'G7',
        this.expectedSeq === 1
          ? `its first event has seq ${e.seq}, not 1`
          : `seq gap: seq ${this.expectedSeq - 1} is followed by seq ${e.seq} (missing ${this.expectedSeq}${e.seq - 1 > this.expectedSeq ? `..${e.seq - 1}` : ''})`,
      );
    }
    // The stored hash, not the recomputed one, links to the next event: an edited event then
    // breaks its own link only, and the report points at it rather than at everything after it.
    // After a gap the mismatch is the gap's consequence and is not reported twice.
    if (eventHash(this.previousHash, this.row.sku, e) !== e.hash && !gap) {
      this.violation(
        'G7',
        `hash chain broken at seq ${e.seq} (${e.type}): the event's content or its predecessor was changed, removed or inserted`,
      );
    }
    this.checkEvent(e, gap);
    this.previous = e;
    this.previousHash = e.hash;
    this.lastSeq = e.seq;
    this.expectedSeq = e.seq + 1;
  }

  /** Call once every event of the product was added. */
  finish(): void {
    const { version } = this.row;
    if (this.eventsSeen === 0 || this.previous === null) {
      this.violation('G7', `has no events, but its version is ${version}`);
      return;
    }
    if (this.lastSeq !== version) {
      this.violation(
        'G7',
        `its events end at seq ${this.lastSeq}, but its version is ${version}${this.lastSeq < version ? ` (seq ${this.lastSeq + 1}..${version} missing)` : ''}`,
      );
    }
    if (!same(this.previous, this.row)) {
      this.violation('G7', `replaying its events gives ${show(this.previous)}, but the row holds ${show(this.row)}`);
    }
  }

  private checkRow(): void {
    const r = this.row;
    if (r.total < 0 || r.reserved < 0 || r.purchased < 0)
      this.violation('G3', `negative counter in the row: ${show(r)}`);
    if (r.reserved + r.purchased > r.total)
      this.violation('G1', `oversold: reserved ${r.reserved} + purchased ${r.purchased} > total ${r.total}`);
    if (r.reserved !== r.reservedSum)
      this.violation('G4', `reserved is ${r.reserved}, but its active reservations hold ${r.reservedSum}`);
    if (r.purchased !== r.purchasedSum)
      this.violation('G4', `purchased is ${r.purchased}, but its purchased reservations hold ${r.purchasedSum}`);
  }

  private checkEvent(e: AuditEvent, afterGap: boolean): void {
    if (e.total < 0 || e.reserved < 0 || e.purchased < 0)
      this.violation('G3', `negative counter after seq ${e.seq} (${e.type}): ${show(e)}`);
    if (e.reserved + e.purchased > e.total) this.violation('G1', `oversold after seq ${e.seq} (${e.type}): ${show(e)}`);
    const missing = missingField(e);
    if (missing !== null) this.violation('G7', `seq ${e.seq} (${e.type}) lacks ${missing}`);

    if ((e.seq === 1) !== (e.type === 'product_created')) {
      this.violation('G7', `seq ${e.seq} is ${e.type}: a product's first event, and only it, is product_created`);
      return;
    }
    if (e.type === 'product_created') {
      const created = { total: this.row.initialStock, reserved: 0, purchased: 0 };
      if (!same(e, created))
        this.violation('G7', `product_created carries ${show(e)}, but the product was created with ${show(created)}`);
      return;
    }
    // Across a gap the missing events' changes are unknown: the gap itself is the finding.
    if (this.previous === null || afterGap || missing !== null) return;
    const expected = stockAfter(this.previous, e);
    if (expected !== null && !same(e, expected)) {
      this.violation(
        'G7',
        `seq ${e.seq} (${e.type}) carries ${show(e)}, but after seq ${this.lastSeq} (${show(this.previous)}) it must be ${show(expected)}`,
      );
    }
  }

  private violation(guarantee: string, message: string): void {
    this.report({ guarantee, sku: this.row.sku, message });
  }
}
