// `npm run bench -- --streams N`: N clients that follow GET /events/stream from the first event and
// read everything, as a consumer of the log would, while the load runs. They count messages
// rather than parse them, so that they take as little CPU as possible from the server they measure.
import http from 'node:http';
import { waitUntil } from '../lib/wait.ts';

/** After the load, the readers get this long to receive every committed event. */
const catchUpMsMax = 120_000;

export interface StreamFigures {
  readonly streams: number;
  /** Events the reader that received the fewest had, when the wait ended. */
  readonly eventsPerStreamMin: number;
  readonly eventsCommitted: number;
  /** From the end of the load until every reader had every committed event; null: not within catchUpMsMax. */
  readonly caughtUpS: number | null;
  readonly bytesTotal: number;
}

interface Reader {
  events: number;
  bytes: number;
  status: number;
  /** The last 4 characters read: an "\nid: " split over two chunks is counted once, with the second. */
  carry: string;
  request: http.ClientRequest;
}

// Every message starts a line with `id: ` after a blank line; the first follows `retry:`'s blank line.
const messageStart = /\nid: /g;

function open(url: string): Promise<Reader> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${url}/events/stream`, { agent: false }, (response) => {
      const reader: Reader = { events: 0, bytes: 0, status: response.statusCode ?? 0, carry: '', request };
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        reader.bytes += Buffer.byteLength(chunk);
        const text = reader.carry + chunk;
        reader.events += text.match(messageStart)?.length ?? 0;
        // Four characters cannot hold a whole "\nid: ", so nothing counted here is counted again.
        reader.carry = text.slice(-4);
      });
      response.on('error', () => {});
      resolve(reader);
    });
    request.on('error', reject);
  });
}

export class StreamReaders {
  private constructor(private readonly readers: readonly Reader[]) {}

  static async open(url: string, count: number): Promise<StreamReaders> {
    const readers = await Promise.all(Array.from({ length: count }, () => open(url)));
    const refused = readers.filter((r) => r.status !== 200).length;
    if (refused > 0) throw new Error(`${refused} of ${count} event streams were refused`);
    return new StreamReaders(readers);
  }

  /** Waits (bounded) until every reader has `eventsCommitted` events, then closes them. */
  async finish(eventsCommitted: number): Promise<StreamFigures> {
    const startedMs = performance.now();
    let caughtUpS: number | null = null;
    try {
      await waitUntil(() => this.minEvents() >= eventsCommitted, catchUpMsMax, 'every stream has every event', 100);
      caughtUpS = (performance.now() - startedMs) / 1000;
    } catch {
      // Reported as not caught up: the figures say how far the slowest reader got.
    }
    for (const r of this.readers) r.request.destroy();
    return {
      streams: this.readers.length,
      eventsPerStreamMin: this.minEvents(),
      eventsCommitted,
      caughtUpS,
      bytesTotal: this.readers.reduce((sum, r) => sum + r.bytes, 0),
    };
  }

  private minEvents(): number {
    return Math.min(...this.readers.map((r) => r.events));
  }
}
