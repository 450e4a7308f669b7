import http from 'node:http';
import { EventSource, type EventSourceFetchInit } from 'eventsource';

// A consumer of GET /events/stream as a Node client writes one: the `eventsource` package's
// EventSource, which reconnects by itself (after the server's `retry:`) and sends the id of the
// last message it received as Last-Event-ID.

/** Every event type of docs/API.md: each is its own SSE event name. */
export const eventTypes = [
  'product_created',
  'stock_adjusted',
  'reserved',
  'purchased',
  'cancelled',
  'expired',
  'released',
  'extended',
  'rejected',
] as const;

export interface ReceivedEvent {
  /** The message's `id`, as EventSource reports it. */
  readonly id: string;
  /** The SSE event name. */
  readonly name: string;
  /** The message's data: an Event of GET /events. */
  readonly event: { position: number; type: string; sku: string; [field: string]: unknown };
  /** performance.now() when it arrived. */
  readonly atMs: number;
}

export interface FollowOptions {
  /** Sent as Last-Event-ID on the first connection (EventSource sends its own on reconnections). */
  readonly lastEventId?: string;
}

/** Follows a stream and keeps every message, the opens and the errors (reconnections) it saw. */
export class StreamFollower {
  readonly received: ReceivedEvent[] = [];
  opens = 0;
  errors: string[] = [];
  private readonly source: EventSource;

  constructor(url: string, options: FollowOptions = {}) {
    let first = true;
    this.source = new EventSource(url, {
      fetch: (input, init: EventSourceFetchInit) => {
        const headers = { ...init.headers };
        if (first && options.lastEventId !== undefined) headers['Last-Event-ID'] = options.lastEventId;
        first = false;
        return fetch(input, { ...init, headers });
      },
    });
    this.source.addEventListener('open', () => this.opens++);
    this.source.addEventListener('error', (e) => this.errors.push(String((e as { message?: string }).message)));
    for (const name of eventTypes) {
      this.source.addEventListener(name, (m: MessageEvent) => {
        this.received.push({ id: m.lastEventId, name, event: JSON.parse(m.data as string), atMs: performance.now() });
      });
    }
  }

  get readyState(): number {
    return this.source.readyState;
  }

  get lastId(): string | undefined {
    return this.received.at(-1)?.id;
  }

  positions(): number[] {
    return this.received.map((r) => r.event.position);
  }

  close(): void {
    this.source.close();
  }
}

/** A stream read as bytes, for what EventSource hides: comments, `retry:`, the status of a refusal. */
export interface RawStream {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Everything received so far, as text. */
  text(): string;
  close(): void;
}

/** Opens `url` and resolves once the answer's head has arrived; the body keeps arriving into text(). */
export function openRawStream(url: string, headers: Record<string, string> = {}): Promise<RawStream> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('error', () => {});
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        text: () => text,
        close: () => request.destroy(),
      });
    });
    request.on('error', reject);
  });
}
