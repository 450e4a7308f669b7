import type { LoggedEvent } from '../engine/read-ports.ts';
import { eventJson } from './event-json.ts';

// The text of the event stream (text/event-stream, the WHATWG HTML "server-sent events" format).
// Each audit event is one message: its position as the `id` an EventSource client sends back as
// Last-Event-ID when it reconnects, its type as the `event` name, and the Event JSON of GET /events
// as `data`. JSON.stringify escapes CR and LF inside strings, so the data is always one line.

/** One event of the log, ready to be written to any stream: formatted once, sent to every reader. */
export interface LogEntry {
  readonly position: number;
  readonly sku: string;
  readonly atMs: number;
  readonly message: string;
}

export function logEntryOf(e: LoggedEvent): LogEntry {
  const message = `id: ${e.position}\nevent: ${e.type}\ndata: ${JSON.stringify(eventJson(e))}\n\n`;
  return { position: e.position, sku: e.sku, atMs: e.atMs, message };
}

/** A comment line: ignored by clients, it keeps proxies from closing a quiet connection. */
export const keepAliveComment = ': keep-alive\n\n';

/** Tells EventSource clients how many milliseconds to wait before they reconnect. */
export const retryField = (retryMs: number) => `retry: ${retryMs}\n\n`;
