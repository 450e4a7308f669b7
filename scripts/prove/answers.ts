import type { Figures } from './criterion.ts';
import type { Answer } from '../lib/api-client.ts';
import { summarizeLatencies } from './latency.ts';

/** "201", "409 insufficient_stock", "503 storage_unavailable", "no answer": how answers are tallied in the report. */
export function outcomeOf(a: Answer): string {
  if (a.status === null) return 'no answer';
  const code =
    typeof a.body === 'object' && a.body !== null && typeof a.body.code === 'string' ? ` ${a.body.code}` : '';
  return `${a.status}${code}`;
}

export function tally(answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers) counts[outcomeOf(a)] = (counts[outcomeOf(a)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

export function tallyLine(answers: readonly Answer[]): string {
  return (
    Object.entries(tally(answers))
      .map(([k, n]) => `${k}: ${n}`)
      .join(', ') || 'none'
  );
}

/** The summary table's figures from every answer of a scenario. */
export function figuresOf(answers: readonly Answer[], wallMs: number, oversells: number): Figures {
  return {
    requests: answers.length,
    successes: answers.filter((a) => a.status !== null && a.status >= 200 && a.status < 300).length,
    rejections: answers.filter((a) => a.status !== null && a.status >= 400 && a.status < 500).length,
    oversells,
    latency: summarizeLatencies(answers.map((a) => a.latencyMs)),
    wallMs,
  };
}

/** An answer as one short line for the report. */
export function answerLine(a: Answer): string {
  const flags = [
    a.replayed ? 'idempotent-replayed: true' : '',
    a.retryAfter !== undefined ? `retry-after: ${a.retryAfter}` : '',
  ]
    .filter((f) => f !== '')
    .join(', ');
  const body = typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
  return `${a.status ?? 'no answer'}${flags === '' ? '' : ` (${flags})`} x-request-id: ${a.requestId} in ${a.latencyMs.toFixed(1)} ms  ${body}`;
}
