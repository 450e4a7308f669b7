import { assert, StorageError } from '../engine/errors.ts';
import type { EventLog } from '../engine/read-ports.ts';
import { logEntryOf, type LogEntry } from './sse-messages.ts';

/** A page of the window as every stream at the same position writes it: joined and encoded once. */
export interface SharedPage {
  readonly entries: readonly LogEntry[];
  readonly bytes: Buffer;
  readonly oldestAtMs: number;
}

interface CachedPage extends SharedPage {
  /** The absolute index after the page's last entry: the page is stale once the window grew past it. */
  readonly endIndex: number;
}

const emptyPage: SharedPage = { entries: [], bytes: Buffer.alloc(0), oldestAtMs: Number.POSITIVE_INFINITY };

export interface EventFeedOptions {
  readonly pollIntervalMs: number;
  /** Newest events kept in memory; older ones are read from the database by the streams behind. */
  readonly windowEventsMax: number;
  readonly pollPageLimit: number;
  readonly pollPagesMax: number;
  /** Encoded pages kept for the streams that share them. */
  readonly sharedPagesMax: number;
  /** The first failed poll of an outage (the next polls retry); then the first that succeeds again. */
  readonly onStorageError: (error: StorageError) => void;
  readonly onRecovered: () => void;
}

/** Position 0 stands for "before the first event" when the feed started on an empty log. */
const beginning = 0;

/**
 * The newest part of the whole log, in the order of GET /events, kept up to date by one poller per
 * instance while at least one stream listens. The table stays the truth: the window is a run of
 * consecutive pages of the same read port (`logEvents` from the feed's own cursor), so the events
 * after a position found in it are exactly those the database would return after that position.
 * Each stream keeps its own position and reads here when the window holds it, else from the database.
 */
export class EventFeed {
  private entries: LogEntry[] = [];
  /** position -> absolute index (`dropped` + index in `entries`); the anchor maps to `dropped` - 1. */
  private readonly indexOf = new Map<number, number>();
  /** Entries removed from the front of the window so far. */
  private dropped = 0;
  /** The last position read; null: the log was empty when the feed started; undefined: not started. */
  private cursor: number | null | undefined = undefined;
  private readonly listeners = new Set<() => void>();
  /** One-shot callbacks of streams whose read failed: run after the next poll that reaches the database. */
  private readonly afterPoll = new Set<() => void>();
  /** Encoded pages by the position they follow, oldest first (a Map keeps insertion order). */
  private readonly pages = new Map<number, CachedPage>();
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;
  /** Grows whenever the window starts or grows: a stream that read across a change looks again. */
  private generationValue = 0;

  constructor(
    private readonly log: Pick<EventLog, 'logEvents' | 'logTail'>,
    private readonly options: EventFeedOptions,
  ) {}

  get generation(): number {
    return this.generationValue;
  }

  /** The newest position the feed has read; null before its first read or on an empty log. */
  get newestPosition(): number | null {
    return this.cursor ?? null;
  }

  /** Registers a stream's wake-up; polling runs while anyone listens. Returns the unsubscribe. */
  subscribe(listener: () => void): () => void {
    assert(!this.stopped, 'no stream subscribes to a stopped feed');
    this.listeners.add(listener);
    if (this.listeners.size === 1 && !this.polling && this.timer === undefined) void this.poll();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.reset();
    };
  }

  /**
   * Calls `callback` once after the next poll that reaches the database: a stream whose own read
   * failed waits for that, rather than ending, so its client loses nothing and need not reconnect.
   */
  afterNextPoll(callback: () => void): void {
    this.afterPoll.add(callback);
  }

  /**
   * Up to `limit` entries after `position`, in log order; an empty array when `position` is the
   * newest the feed has; undefined when the window does not hold `position` (older than the window,
   * or not read yet): the caller reads the database.
   */
  after(position: number, limit: number): readonly LogEntry[] | undefined {
    const index = this.indexOf.get(position);
    if (index === undefined) return undefined;
    const start = index + 1 - this.dropped;
    return this.entries.slice(start, start + limit);
  }

  /**
   * The same entries as after(), joined and encoded once for every stream that asks at the same
   * position while the window has not grown: streams following the head all write the same pages.
   */
  pageAfter(position: number, limit: number): SharedPage | undefined {
    const index = this.indexOf.get(position);
    if (index === undefined) return undefined;
    const start = index + 1 - this.dropped;
    const end = Math.min(start + limit, this.entries.length);
    if (end <= start) return emptyPage;
    const endIndex = this.dropped + end;
    const cached = this.pages.get(position);
    if (cached !== undefined && cached.endIndex === endIndex) return cached;
    const entries = this.entries.slice(start, end);
    let oldestAtMs = Number.POSITIVE_INFINITY;
    for (const entry of entries) oldestAtMs = Math.min(oldestAtMs, entry.atMs);
    const page = { entries, bytes: Buffer.from(entries.map((e) => e.message).join('')), oldestAtMs, endIndex };
    this.pages.delete(position);
    this.pages.set(position, page);
    if (this.pages.size > this.options.sharedPagesMax) this.pages.delete(this.pages.keys().next().value!);
    return page;
  }

  /** Ends polling for good (shutdown). */
  stop(): void {
    this.stopped = true;
    this.reset();
  }

  /** Nobody listens: the window is dropped, and a later stream starts a fresh one at the log's end. */
  private reset(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.entries = [];
    this.afterPoll.clear();
    this.pages.clear();
    this.indexOf.clear();
    this.dropped = 0;
    this.cursor = undefined;
  }

  private async poll(): Promise<void> {
    this.timer = undefined;
    this.polling = true;
    try {
      await this.readNewEvents();
      this.succeeded();
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      if (!this.failing) this.options.onStorageError(error);
      this.failing = true;
    } finally {
      this.polling = false;
      if (this.listeners.size > 0 && !this.stopped) {
        this.timer = setTimeout(() => void this.poll(), this.options.pollIntervalMs);
      }
    }
  }

  private succeeded(): void {
    if (this.failing) this.options.onRecovered();
    this.failing = false;
    const callbacks = [...this.afterPoll];
    this.afterPoll.clear();
    for (const callback of callbacks) callback();
  }

  /** Reads up to pollPagesMax pages after the cursor (anchoring it at the log's end first). */
  private async readNewEvents(): Promise<void> {
    if (this.cursor === undefined) {
      const tail = await this.log.logTail();
      // Nobody listens any more, or the feed was stopped, while the tail was read.
      if (this.listeners.size === 0) return;
      this.cursor = tail;
      this.indexOf.set(tail ?? beginning, this.dropped - 1);
      // A stream that caught up from the database before the window existed may sit before its
      // anchor, with events in between that no later addition would make it look for.
      this.notify();
    }
    for (let page = 0; page < this.options.pollPagesMax; page++) {
      const cursor: number | null = this.cursor;
      const read = await this.log.logEvents(cursor === null ? null : String(cursor), this.options.pollPageLimit);
      // The window was dropped while the page was read: its events belong to no window.
      if (this.cursor !== cursor) return;
      assert(read !== null, 'the feed reads after positions it has read, which exist');
      if (read.events.length > 0) this.append(read.events.map(logEntryOf));
      if (!read.more) return;
    }
  }

  private append(added: readonly LogEntry[]): void {
    for (const entry of added) {
      this.indexOf.set(entry.position, this.dropped + this.entries.length);
      this.entries.push(entry);
    }
    this.cursor = added.at(-1)!.position;
    this.trim();
    this.notify();
  }

  /** Wakes the streams waiting for the window to change. */
  private notify(): void {
    this.generationValue++;
    for (const listener of this.listeners) listener();
  }

  /** Keeps the newest windowEventsMax entries; the newest removed one becomes the anchor. */
  private trim(): void {
    const excess = this.entries.length - this.options.windowEventsMax;
    if (excess <= 0) return;
    // Map order is insertion order: the anchor, then the entries oldest first.
    const newAnchorIndex = this.dropped + excess - 1;
    for (const [position, index] of this.indexOf) {
      if (index >= newAnchorIndex) break;
      this.indexOf.delete(position);
    }
    this.entries.splice(0, excess);
    this.dropped += excess;
  }
}
