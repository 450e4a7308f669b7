import { Readable } from 'node:stream';
import { StorageError } from '../engine/errors.ts';
import type { EventFeed, SharedPage } from './event-feed.ts';
import { keepAliveComment, retryField, type LogEntry } from './sse-messages.ts';

/** Where a stream reads: the shared window first, the database (a bounded number at a time) else. */
export interface StreamSource {
  readonly feed: EventFeed;
  /** Entries after `position` from the database, at most `pageLimit`; throws StorageError. */
  readDatabase(position: number): Promise<readonly LogEntry[]>;
  readonly pageLimit: number;
}

export interface StreamSettings {
  /** The position of the last event the client has; 0: from the beginning. */
  readonly position: number;
  /** Only this product's events are written (positions stay global). */
  readonly sku: string | undefined;
  /** The first page, read before the stream started (to refuse an unknown position with 400). */
  readonly firstPage: readonly LogEntry[];
  readonly heartbeatMs: number;
  readonly retryMs: number;
  readonly highWaterMarkBytes: number;
}

/** What a stream reports to the metrics and to its owner. */
export interface StreamEvents {
  sent(events: number, oldestAtMs: number): void;
  /** A failure that is not the database's: a defect, logged; the stream is destroyed. */
  defect(error: Error): void;
  closed(stream: EventStream): void;
}

type Step =
  /** `shared`: the window's encoded page, written as it is (the stream has no SKU filter). */
  | { readonly kind: 'page'; readonly entries: readonly LogEntry[]; readonly shared?: SharedPage }
  | { readonly kind: 'caught-up' };

/**
 * One client's stream of the log: a Readable that Fastify pipes into the response, so it reads
 * and formats the next page only when Node asks for more, i.e. once the socket has taken what was
 * written (pipe waits for 'drain' whenever write() returns false). A reader that stops reading
 * holds at most highWaterMarkBytes plus one page here, and the socket's own buffer.
 */
export class EventStream extends Readable {
  private position: number;
  private pending: readonly LogEntry[] | undefined;
  private pumping = false;
  /** Caught up with the log: the feed's next addition wakes the stream. */
  private waiting = false;
  /** push(null) was called: nothing more may be pushed. */
  private ended = false;
  private lastWriteMs = Date.now();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly source: StreamSource,
    private readonly settings: StreamSettings,
    private readonly events: StreamEvents,
  ) {
    super({ highWaterMark: settings.highWaterMarkBytes });
    this.position = settings.position;
    this.pending = settings.firstPage;
    this.unsubscribe = source.feed.subscribe(() => this.wake());
    // Written at once, so the status and headers go out and the client knows the stream is open.
    this.push(retryField(settings.retryMs));
    this.armHeartbeat(settings.heartbeatMs);
  }

  /** The events this stream has written reach up to here (the client's Last-Event-ID, or later). */
  get sentPosition(): number {
    return this.position;
  }

  /** Ends the stream after what it has buffered (shutdown); the client reconnects elsewhere or later. */
  finish(): void {
    if (this.destroyed || this.ended) return;
    this.endStream();
  }

  override _read(): void {
    if (!this.pumping && !this.waiting) void this.pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.heartbeat);
    this.unsubscribe();
    this.events.closed(this);
    callback(error);
  }

  private wake(): void {
    if (this.destroyed || this.ended) return;
    if (this.waiting && !this.pumping) {
      this.waiting = false;
      void this.pump();
    }
  }

  /** Writes pages until the buffer is full (Node calls _read again when it drains) or the log's end. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (;;) {
        const generation = this.source.feed.generation;
        const step = await this.next();
        if (this.destroyed || this.ended) return;
        if (step.kind === 'caught-up') {
          // Events were added while this stream read: look again rather than wait for the next ones.
          if (this.source.feed.generation !== generation) continue;
          this.waiting = true;
          return;
        }
        this.position = step.entries.at(-1)!.position;
        if (!this.write(step)) return;
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.pumping = false;
    }
  }

  /** The next page after this stream's position: the first page, the shared window, or the database. */
  private async next(): Promise<Step> {
    let entries = this.pending;
    this.pending = undefined;
    if (entries === undefined && this.settings.sku === undefined) {
      const shared = this.source.feed.pageAfter(this.position, this.source.pageLimit);
      if (shared !== undefined) return shared.entries.length === 0 ? { kind: 'caught-up' } : pageOf(shared);
    }
    entries ??= this.source.feed.after(this.position, this.source.pageLimit);
    entries ??= await this.source.readDatabase(this.position);
    return entries.length === 0 ? { kind: 'caught-up' } : { kind: 'page', entries };
  }

  /** Pushes one page (the entries of the stream's product, when it has one); false when the buffer is full. */
  private write(step: Extract<Step, { kind: 'page' }>): boolean {
    const { shared, entries } = step;
    if (shared !== undefined) {
      this.lastWriteMs = Date.now();
      this.events.sent(entries.length, shared.oldestAtMs);
      return this.push(shared.bytes);
    }
    const { sku } = this.settings;
    let text = '';
    let count = 0;
    let oldestAtMs = Number.POSITIVE_INFINITY;
    for (const entry of entries) {
      if (sku !== undefined && entry.sku !== sku) continue;
      text += entry.message;
      count++;
      if (entry.atMs < oldestAtMs) oldestAtMs = entry.atMs;
    }
    if (count === 0) return true;
    this.lastWriteMs = Date.now();
    this.events.sent(count, oldestAtMs);
    return this.push(text);
  }

  /**
   * A database that does not answer keeps the stream open: it reads again after the shared poller's
   * next successful poll (the poller reports the outage once), so its client loses nothing and
   * need not reconnect, which a new connection could not do before the database is back. Anything
   * else is a defect and destroys the stream with it.
   */
  private fail(error: unknown): void {
    if (!(error instanceof StorageError)) {
      const defect = error instanceof Error ? error : new Error(String(error));
      this.events.defect(defect);
      this.destroy(defect);
      return;
    }
    this.waiting = true;
    this.source.feed.afterNextPoll(() => this.wake());
  }

  private endStream(): void {
    this.ended = true;
    this.waiting = false;
    clearTimeout(this.heartbeat);
    this.push(null);
  }

  /** A comment after heartbeatMs without a write; none while the client has not taken what was written. */
  private armHeartbeat(delayMs: number): void {
    this.heartbeat = setTimeout(() => {
      if (this.destroyed || this.ended) return;
      const quietMs = Date.now() - this.lastWriteMs;
      if (quietMs < this.settings.heartbeatMs) return this.armHeartbeat(this.settings.heartbeatMs - quietMs);
      if (this.readableLength === 0) {
        this.lastWriteMs = Date.now();
        this.push(keepAliveComment);
      }
      this.armHeartbeat(this.settings.heartbeatMs);
    }, delayMs);
    // The socket keeps the process running while the stream is open; the timer need not.
    this.heartbeat.unref();
  }
}

const pageOf = (shared: SharedPage): Step => ({ kind: 'page', entries: shared.entries, shared });
