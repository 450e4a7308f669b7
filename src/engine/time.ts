/**
 * An instant in epoch milliseconds, as the API and the database read it: ISO 8601 in UTC with
 * milliseconds (`2025-01-31T12:00:00.000Z`). The engine counts milliseconds; text is for the edges.
 */
export function isoOf(ms: number): string {
  // The last two instants asked for are kept: a batch renders the same two (its time, and the
  // expiry it gives) for every reservation it decides, and toISOString is most of what that costs.
  if (ms === newestMs) return newestIso;
  if (ms === olderMs) return olderIso;
  const iso = new Date(ms).toISOString();
  olderMs = newestMs;
  olderIso = newestIso;
  newestMs = ms;
  newestIso = iso;
  return iso;
}

let newestMs = Number.NaN;
let newestIso = '';
let olderMs = Number.NaN;
let olderIso = '';
