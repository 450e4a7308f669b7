import pg from 'pg';
import { databaseViolations, productsByCheck, type Violation } from '../lib/oracle.ts';

export interface Correctness {
  /** What the oracle (scripts/lib/oracle.ts) found, listed up to its bound per check. */
  readonly oracleViolations: readonly Violation[];
  readonly oversoldProducts: number;
  readonly negativeProducts: number;
  readonly countersNotEqualSums: number;
  /** Events per committed batch transaction (product creation excluded). */
  readonly meanBatchSize: number;
  readonly batches: number;
  readonly verifyOk: boolean | null;
  readonly verifyViolations: number;
  /**
   * Reservation rows in the database. Never fewer than the 201s the generator counted: each 201
   * is a new reservation unless two requests shared an Idempotency-Key (a replay answers 201 too).
   */
  readonly reservationRows: number;
  /** Reservations (distinct ids): a cart is one reservation of several rows. */
  readonly reservations: number;
}

/** After a load: the oracle's checks in plain SQL (G1-G4, G7), then `verify`. */
export async function checkCorrectness(databaseUrl: string): Promise<Correctness> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const violations = await databaseViolations(client);
    const products = productsByCheck(violations);
    const sums = violations.filter((v) => v.check === 'reserved-sum' || v.check === 'purchased-sum');
    const unequal = new Set(sums.map((v) => v.sku));
    const {
      rows: [b],
    } = await client.query(`
      select count(*)::float8 / nullif(count(distinct tx_id), 0) as mean, count(distinct tx_id)::int as batches
        from inventory_events where type <> 'product_created'`);
    const {
      rows: [r],
    } = await client.query(`
      select count(*)::int as n, count(distinct id)::int as ids from reservations`);
    let verifyOk: boolean | null = null;
    let verifyViolations = 0;
    try {
      const { verifyDatabase } = await import('../../src/audit/verify-database.ts');
      const report = await verifyDatabase(databaseUrl);
      verifyOk = report.ok;
      verifyViolations = report.violations.length;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    }
    return {
      oracleViolations: violations,
      oversoldProducts: products.oversold,
      negativeProducts: products.negative,
      countersNotEqualSums: unequal.size,
      meanBatchSize: Number(b.mean ?? 0),
      batches: b.batches,
      verifyOk,
      verifyViolations,
      reservationRows: r.n,
      reservations: r.ids,
    };
  } finally {
    await client.end();
  }
}

/** Mean batch commit time in ms from the server's Prometheus metrics, when it exposes them. */
export async function commitMsMean(serverUrl: string): Promise<number | null> {
  try {
    const text = await (await fetch(`${serverUrl}/metrics`)).text();
    const sum = /^secventory_batch_commit_duration_seconds_sum(?:\{[^}]*\})? ([\d.e+-]+)$/m.exec(text)?.[1];
    const count = /^secventory_batch_commit_duration_seconds_count(?:\{[^}]*\})? ([\d.e+-]+)$/m.exec(text)?.[1];
    if (sum === undefined || count === undefined || Number(count) === 0) return null;
    return (Number(sum) / Number(count)) * 1000;
  } catch {
    return null;
  }
}
