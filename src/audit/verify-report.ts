export interface Violation {
  /** The guarantee of docs/DESIGN.md that does not hold: 'G1' .. 'G7'. */
  guarantee: string;
  /** The product it concerns; null when it concerns none in particular. */
  sku: string | null;
  reservationId?: string;
  message: string;
}

/** What one verify run found, as of one snapshot of the database. */
export interface VerifyReport {
  ok: boolean;
  products: number;
  events: number;
  reservations: number;
  durationMs: number;
  violations: Violation[];
}
