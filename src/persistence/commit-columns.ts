import type { AuditEvent, BatchWrite, IdempotencyRecord, Reservation, StatusChange } from '../engine/types.ts';
import { arrayLiteral } from './array-literal.ts';

// The one declaration of what a group of batches sends to `secventory_commit_batches`
// (migrations/functions): every parameter's name and SQL type, in order, and how its values are
// taken from the batches. The statement's text and the parameter arrays are both built from it, and
// the statement names each parameter (`p_sku => $1::text[]`), so a column out of place or of another
// type fails at once instead of writing one field into another. A test compares it with pg_proc.

type SqlType = 'text' | 'bigint' | 'integer' | 'smallint' | 'uuid';
type Scalar = string | number | null;

/** A kind of row the function writes, and the columns of it, each from a row and its batch. */
interface RowKind<Row> {
  readonly rowsOf: (write: BatchWrite) => readonly Row[];
  readonly columns: readonly (readonly [name: string, type: SqlType, take: (row: Row, write: BatchWrite) => Scalar])[];
}

const kind = <Row>(k: RowKind<Row>): RowKind<Row> => k;

const productRows = kind<BatchWrite>({
  rowsOf: (w) => [w],
  columns: [
    ['p_sku', 'text', (w) => w.sku],
    ['p_version_before', 'bigint', (w) => w.versionBefore],
    ['p_hash_before', 'text', (w) => w.hashBefore],
    ['p_version_after', 'bigint', (w) => w.counters.version],
    ['p_total', 'bigint', (w) => w.counters.total],
    ['p_reserved', 'bigint', (w) => w.counters.reserved],
    ['p_purchased', 'bigint', (w) => w.counters.purchased],
    ['p_at_ms', 'bigint', (w) => w.atMs],
  ],
});

const reservationRows = kind<Reservation>({
  rowsOf: (w) => w.inserted,
  columns: [
    ['r_sku', 'text', (r) => r.sku],
    ['r_id', 'uuid', (r) => r.id],
    ['r_quantity', 'integer', (r) => r.quantity],
    ['r_created_at_ms', 'bigint', (r) => r.createdAtMs],
    ['r_expires_at_ms', 'bigint', (r) => r.expiresAtMs],
    ['r_line', 'smallint', (r) => r.line],
    ['r_lines', 'smallint', (r) => r.lines],
  ],
});

// Status changes and idempotency records do not carry their SKU: their batch's is taken.
const statusChangeRows = kind<StatusChange>({
  rowsOf: (w) => w.changed,
  columns: [
    ['u_sku', 'text', (_, w) => w.sku],
    ['u_id', 'uuid', (c) => c.id],
    ['u_from', 'text', (c) => c.from],
    ['u_to', 'text', (c) => c.to],
    ['u_at_ms', 'bigint', (c) => c.atMs],
    ['u_purchased_quantity', 'integer', (c) => c.purchasedQuantity],
    ['u_expires_at_ms', 'bigint', (c) => c.expiresAtMs],
  ],
});

const eventRows = kind<AuditEvent>({
  rowsOf: (w) => w.events,
  columns: [
    ['e_sku', 'text', (e) => e.sku],
    ['e_seq', 'bigint', (e) => e.seq],
    ['e_type', 'text', (e) => e.type],
    ['e_reservation_id', 'uuid', (e) => e.reservationId],
    ['e_quantity', 'integer', (e) => e.quantity],
    ['e_delta', 'bigint', (e) => e.delta],
    ['e_reason', 'text', (e) => e.reason],
    ['e_code', 'text', (e) => e.code],
    ['e_request_id', 'text', (e) => e.requestId],
    ['e_idempotency_key', 'text', (e) => e.idempotencyKey],
    ['e_source', 'text', (e) => e.source],
    ['e_late_ms', 'bigint', (e) => e.lateMs],
    ['e_total', 'bigint', (e) => e.total],
    ['e_reserved', 'bigint', (e) => e.reserved],
    ['e_purchased', 'bigint', (e) => e.purchased],
    ['e_at_ms', 'bigint', (e) => e.atMs],
    ['e_hash', 'text', (e) => e.hash],
    ['e_expires_at_ms', 'bigint', (e) => e.expiresAtMs],
  ],
});

const idempotencyRows = kind<IdempotencyRecord>({
  rowsOf: (w) => w.idempotency,
  columns: [
    ['i_sku', 'text', (i, w) => i.scope ?? w.sku],
    ['i_key', 'text', (i) => i.key],
    ['i_fingerprint', 'text', (i) => i.fingerprint],
    ['i_outcome', 'text', (i) => JSON.stringify(i.outcome)],
    ['i_at_ms', 'bigint', (_, w) => w.atMs],
  ],
});

// Widened to unknown rows once, here, so that the kinds can be walked as one list.
const rowKinds = [
  productRows,
  reservationRows,
  statusChangeRows,
  eventRows,
  idempotencyRows,
] as readonly RowKind<unknown>[];

/** The function's parameters in order: name and SQL type (arrays but the last, a flag). */
export const commitParameters: readonly { name: string; type: string }[] = [
  ...rowKinds.flatMap((k) => k.columns.map(([name, type]) => ({ name, type: `${type}[]` }))),
  { name: 'all_or_nothing', type: 'boolean' },
];

/** The statement: every parameter by name, cast to its type. */
export const commitBatchesSql = `select secventory_commit_batches(${commitParameters
  .map((p, i) => `${p.name} => $${i + 1}::${p.type}`)
  .join(', ')}) as results`;

/**
 * The statement's parameter values for a group of batches: one array literal per column, then
 * whether the group commits all or nothing (a cart's products) or each batch on its own.
 */
export function commitValues(writes: readonly BatchWrite[], allOrNothing: boolean): string[] {
  const values: string[] = [];
  for (const k of rowKinds) {
    const columns: Scalar[][] = k.columns.map(() => []);
    for (const write of writes) {
      for (const row of k.rowsOf(write)) {
        for (let c = 0; c < k.columns.length; c++) columns[c]!.push(k.columns[c]![2](row, write));
      }
    }
    for (const column of columns) values.push(arrayLiteral(column));
  }
  values.push(allOrNothing ? 'true' : 'false');
  return values;
}
