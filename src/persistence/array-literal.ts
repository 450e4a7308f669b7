/**
 * A list of scalars in PostgreSQL's array input syntax (`{"a","b\"c",NULL,12}`), to be sent as a
 * text parameter and cast by the statement (`$1::text[]`, `$2::bigint[]`, `$3::uuid[]`).
 *
 * Why not hand node-postgres the JavaScript array: it quotes and escapes element by element with
 * two regex replaces each, which made its array serializer the largest allocator of the hot path
 * (about 10 KB per reserved command of 35 KB; a heap sampling profile of the hot benchmark). Here
 * a string is only scanned, and copied with escapes only when it holds a quote or a backslash.
 *
 * Every string is quoted, so '', 'NULL', commas, braces and spaces arrive as themselves; null is
 * SQL NULL. Numbers must be finite (they are counters, sequence numbers and epoch milliseconds).
 */
export function arrayLiteral(values: readonly (string | number | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const value = values[i]!;
    if (value === null) out += 'NULL';
    else if (typeof value === 'number') out += numberElement(value);
    else out += needsEscape.test(value) ? `"${value.replace(escapable, '\\$&')}"` : `"${value}"`;
  }
  return `${out}}`;
}

const needsEscape = /["\\]/;
const escapable = /["\\]/g;

function numberElement(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`${value} cannot be stored`);
  return String(value);
}
