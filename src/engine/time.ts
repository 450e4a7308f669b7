/**
 * An instant in epoch milliseconds, as the API and the database read it: ISO 8601 in UTC with
 * milliseconds (`2025-01-31T12:00:00.000Z`). The engine counts milliseconds; text is for the edges.
 */
export const isoOf = (ms: number): string => new Date(ms).toISOString();
