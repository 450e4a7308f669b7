import type { ServerResponse } from 'node:http';
import PQueue from 'p-queue';
import { assert, type StorageError } from '../engine/errors.ts';
import {
  eventStreamBufferBytes,
  eventStreamEndGraceMs,
  eventStreamPageLimit,
  eventStreamPollIntervalMs,
  eventStreamPollPageLimit,
  eventStreamPollPagesMax,
  eventStreamReadsInFlightMax,
  eventStreamRetryMs,
  eventStreamSharedPagesMax,
  eventStreamWindowEventsMax,
} from '../engine/limits.ts';
import type { EventLog } from '../engine/read-ports.ts';
import { ApiError } from './errors.ts';
import { EventFeed } from './event-feed.ts';
import { EventStream, type StreamSource } from './event-stream.ts';
import { logEntryOf, type LogEntry } from './sse-messages.ts';

/** What the metrics learn from the streams as they write. */
export interface EventStreamObserver {
  /** A page of `events` was written to one stream; its oldest event is `oldestAtMs` old. */
  eventsStreamed(events: number, oldestAtMs: number): void;
}

export interface EventStreamsOptions {
  readonly eventLog: Pick<EventLog, 'logEvents' | 'logTail'>;
  readonly streamsMax: number;
  readonly heartbeatMs: number;
  readonly observer: EventStreamObserver;
  /** The poller found the database unreachable (it retries; streams wait), and once it is back. */
  readonly onStorageError: (error: StorageError) => void;
  readonly onRecovered: () => void;
  /** A stream failed for another reason: a defect. */
  readonly onDefect: (error: Error) => void;
}

export interface NewStream {
  readonly position: number;
  readonly sku: string | undefined;
  readonly firstPage: readonly LogEntry[];
}

/**
 * The event streams of one instance: how many may be open, the one poller they share (EventFeed),
 * their reads of the database (eventStreamReadsInFlightMax at a time, so streams replaying the log
 * leave the pool to the commits), and their end at shutdown.
 */
export class EventStreams implements StreamSource {
  readonly feed: EventFeed;
  readonly pageLimit = eventStreamPageLimit;
  private readonly streams = new Map<EventStream, ServerResponse>();
  /** Slots taken by requests that are reading their first page. */
  private reserved = 0;
  private closing = false;
  private readonly reads = new PQueue({ concurrency: eventStreamReadsInFlightMax });

  constructor(private readonly options: EventStreamsOptions) {
    this.feed = new EventFeed(options.eventLog, {
      pollIntervalMs: eventStreamPollIntervalMs,
      windowEventsMax: eventStreamWindowEventsMax,
      pollPageLimit: eventStreamPollPageLimit,
      pollPagesMax: eventStreamPollPagesMax,
      sharedPagesMax: eventStreamSharedPagesMax,
      onStorageError: options.onStorageError,
      onRecovered: options.onRecovered,
    });
  }

  /** Streams open now, and those being opened. */
  get openCount(): number {
    return this.streams.size + this.reserved;
  }

  /** Bytes written to the streams that their clients have not taken yet (Node's buffers, not the kernel's). */
  bufferedBytes(): number {
    let bytes = 0;
    for (const [stream, response] of this.streams) bytes += stream.readableLength + response.writableLength;
    return bytes;
  }

  /**
   * The largest distance from the newest position the poller read to a stream's position: about
   * the number of events the furthest-behind stream still has to write. 0 while nothing was read.
   */
  lagPositionsMax(): number {
    const newest = this.feed.newestPosition;
    if (newest === null) return 0;
    let lag = 0;
    for (const stream of this.streams.keys()) lag = Math.max(lag, newest - stream.sentPosition);
    return lag;
  }

  /** Takes a slot for one more stream; false when streamsMax are open or the server is closing. */
  reserve(): boolean {
    if (this.closing || this.openCount >= this.options.streamsMax) return false;
    this.reserved++;
    return true;
  }

  /** Gives back a slot that reserve() took and open() will not use. */
  release(): void {
    assert(this.reserved > 0, 'a stream slot is released only after it was reserved');
    this.reserved--;
  }

  /** The page after `position` (0: the first page); null when no event has that position. */
  async firstPage(position: number): Promise<readonly LogEntry[] | null> {
    const page = await this.reads.add(() => this.options.eventLog.logEvents(cursorOf(position), this.pageLimit));
    return page === null ? null : page.events.map(logEntryOf);
  }

  async readDatabase(position: number): Promise<readonly LogEntry[]> {
    const page = await this.reads.add(() => this.options.eventLog.logEvents(cursorOf(position), this.pageLimit));
    assert(page !== null, 'a stream reads after positions it was given or has read, which exist');
    return page.events.map(logEntryOf);
  }

  /**
   * Starts a stream in a slot taken by reserve(); the caller sends it as the response body. The
   * server may have begun closing while the first page was read: then nothing starts (503), and
   * the caller still holds the slot to release.
   */
  open(stream: NewStream, response: ServerResponse): EventStream {
    assert(this.reserved > 0, 'a stream opens in a reserved slot');
    if (this.closing) throw new ApiError('overloaded', 'the server is shutting down; nothing was done');
    this.reserved--;
    const settings = {
      ...stream,
      heartbeatMs: this.options.heartbeatMs,
      retryMs: eventStreamRetryMs,
      highWaterMarkBytes: eventStreamBufferBytes,
    };
    const opened = new EventStream(this, settings, {
      sent: (events, oldestAtMs) => this.options.observer.eventsStreamed(events, oldestAtMs),
      defect: (error) => this.options.onDefect(error),
      closed: (closed) => this.streams.delete(closed),
    });
    this.streams.set(opened, response);
    return opened;
  }

  /**
   * Shutdown: refuses new streams, ends every open one after what it has buffered, and closes the
   * connection of any whose client has not taken its end within eventStreamEndGraceMs.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.feed.stop();
    if (this.streams.size === 0) return;
    const ended = [...this.streams].map(([stream, response]) => {
      stream.finish();
      return new Promise<void>((resolve) => {
        if (response.writableFinished || response.destroyed) return resolve();
        response.once('close', resolve);
        response.once('finish', resolve);
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, eventStreamEndGraceMs)));
    await Promise.race([Promise.all(ended), grace]);
    clearTimeout(timer);
    for (const response of this.streams.values()) {
      if (!response.writableFinished) response.destroy();
    }
  }
}

/** The event log's cursor: decimal text, null for the beginning. */
const cursorOf = (position: number) => (position === 0 ? null : String(position));
