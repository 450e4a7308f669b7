import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as PrometheusRegistry } from 'prom-client';
import { StorageError } from '../engine/errors.ts';
import { latencyBucketBoundsMs, LatencyHistogram } from '../engine/latency-histogram.ts';
import { activeReservationsCacheMs } from '../engine/limits.ts';
import type { CartOp } from '../engine/decide-cart.ts';
import type { BatchCommittedEvent, CommitStatementEvent, EngineObserver } from '../engine/observer.ts';
import type { ReadModel } from '../engine/read-ports.ts';
import type { Command, CommandResult, CommandType, FailureCode } from '../engine/types.ts';
import type { EventStreamObserver } from './event-streams.ts';
import {
  bucketQuantileMs,
  outcomeError,
  outcomeOk,
  outcomeRejected,
  RecentWindow,
  type OutcomeIndex,
} from './recent-window.ts';

// The one module that imports prom-client (docs/DESIGN.md, Code conventions): engine events in,
// Prometheus metrics and the figures of /stats out. No metric carries a SKU label: a label per
// product would make one time series per product, and a busy shop has millions of products.

export const operationNames = [
  'reserve',
  'purchase',
  'cancel',
  'expire',
  'adjust',
  'extend',
] as const satisfies readonly CommandType[];
/** Operations of the cart coordinator: a reservation of several products, and any operation on one. */
export const cartOperationNames = [
  'reserve',
  'purchase',
  'cancel',
  'extend',
  'expire',
] as const satisfies readonly CartOp['type'][];
export const outcomeNames = ['ok', 'rejected', 'error'] as const;
const outcomeCount = outcomeNames.length;

// Latency buckets in seconds, the engine's own (milliseconds), so /metrics, /stats and /actors
// put a latency in the same bucket.
const latencyBucketsSeconds = latencyBucketBoundsMs.map((ms) => ms / 1000);
// Batch sizes up to the largest SECVENTORY_BATCH_SIZE_MAX that config.ts accepts (10,000).
const batchSizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];

function operationIndex(type: CommandType): number {
  switch (type) {
    case 'reserve':
      return 0;
    case 'purchase':
      return 1;
    case 'cancel':
      return 2;
    case 'expire':
      return 3;
    case 'adjust':
      return 4;
    case 'extend':
      return 5;
    // A cart's refusal recorded on one of its products: counted with the reservations.
    case 'refuse':
      return 0;
    default: {
      const unreachable: never = type;
      return unreachable;
    }
  }
}

function cartOperationIndex(type: CartOp['type']): number {
  switch (type) {
    case 'reserve':
      return 0;
    case 'purchase':
      return 1;
    case 'cancel':
      return 2;
    case 'extend':
      return 3;
    case 'expire':
      return 4;
    default: {
      const unreachable: never = type;
      return unreachable;
    }
  }
}

/** A 4xx failure is the client's request refused; a 5xx one is the service failing it. */
function failureOutcome(code: FailureCode): OutcomeIndex {
  switch (code) {
    case 'product_not_found':
    case 'reservation_not_found':
    case 'idempotency_key_reused':
    case 'validation_failed':
      return outcomeRejected;
    case 'storage_unavailable':
    case 'overloaded':
    case 'internal_error':
      return outcomeError;
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}

/** A replay counts like the outcome it replays: the client got that answer again. */
function resultOutcome(result: CommandResult): OutcomeIndex {
  if (result.type === 'failed') return failureOutcome(result.code);
  return result.outcome.kind === 'rejected' ? outcomeRejected : outcomeOk;
}

/** What the event stream gauges read at scrape time (src/api/event-streams.ts has it). */
export interface StreamGauges {
  readonly openCount: number;
  bufferedBytes(): number;
  lagPositionsMax(): number;
}

// From the decision of an event to its write to a stream: milliseconds when a stream follows the
// log, minutes or more while one replays it from an old position.
const streamDelayBucketsSeconds = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300, 3600];

/** What the gauges read from the engine at scrape time (the engine's Registry has it). */
export interface EngineGauges {
  readonly liveActors: number;
  queueDepthTotal(): number;
}

export interface SinceStart {
  readonly startedAtMs: number;
  readonly operations: number;
  readonly rejected: number;
  readonly errors: number;
  readonly reservations: number;
  readonly reservationLatencyMsMean: number;
  readonly reservationLatencyMsP99: number;
}

/**
 * Turns engine events into Prometheus metrics on its own registry (never the global one, so
 * two services in one process, as in tests, never share a counter) and into the figures of
 * /stats. Its handlers run for every command, so each one does a few array writes and the
 * prom-client calls on children bound once in the constructor; anything that needs a loop or a
 * query waits for a scrape.
 */
export class Metrics implements EngineObserver, EventStreamObserver {
  readonly prometheus = new PrometheusRegistry();
  readonly startedAtMs = Date.now();
  readonly recent = new RecentWindow();
  private engine: EngineGauges | undefined;
  private streams: StreamGauges | undefined;

  /** operation x outcome; exported to the counter on each scrape (see flushOperationCounts). */
  private readonly operationCounts = new Float64Array(operationNames.length * outcomeCount);
  private readonly exportedCounts = new Float64Array(operationNames.length * outcomeCount);
  /** cart operation x outcome, exported the same way. */
  private readonly cartCounts = new Float64Array(cartOperationNames.length * outcomeCount);
  private readonly exportedCartCounts = new Float64Array(cartOperationNames.length * outcomeCount);
  private readonly reservationLatency = new LatencyHistogram();

  private readonly operationsTotal: Counter<'operation' | 'outcome'>;
  private readonly operationDuration: ReturnType<Histogram<'operation'>['labels']>[];
  private readonly cartOperationsTotal: Counter<'operation' | 'outcome'>;
  private readonly cartOperationDuration: ReturnType<Histogram<'operation'>['labels']>[];
  private readonly reservationDuration: Histogram;
  private readonly batchSize: Histogram;
  private readonly batchCommitDuration: Histogram;
  private readonly commitQueueWait: Histogram;
  private readonly commitRoundTrip: Histogram;
  private readonly versionConflicts: Counter;
  private readonly storageErrors: Counter;
  private readonly invariantViolations: Counter;
  private readonly expiries: Counter;
  private readonly streamEventsSent: Counter;
  private readonly streamDelay: Histogram;

  private activeReservationsValue: number | null = null;
  private activeReservationsAtMs = Number.NEGATIVE_INFINITY;
  private activeReservationsQuery: Promise<number | null> | undefined;

  constructor(private readonly activeReservationSource: Pick<ReadModel, 'countActiveReservations'>) {
    const registers = [this.prometheus];
    this.operationsTotal = new Counter({
      name: 'secventory_operations_total',
      help: 'Commands answered, by operation and outcome (ok; rejected: a business rule or a 4xx; error: a 5xx)',
      labelNames: ['operation', 'outcome'],
      registers,
      collect: () => flushCounts(this.operationsTotal, operationNames, this.operationCounts, this.exportedCounts),
    });
    for (const operation of operationNames) {
      for (const outcome of outcomeNames) this.operationsTotal.labels(operation, outcome).inc(0);
    }
    const cart = this.cartMetrics(registers);
    this.cartOperationsTotal = cart.total;
    this.cartOperationDuration = cart.duration;
    const operationDuration = new Histogram({
      name: 'secventory_operation_duration_seconds',
      help: "Time from a command entering its product's mailbox to its answer, by operation",
      labelNames: ['operation'],
      buckets: latencyBucketsSeconds,
      registers,
    });
    for (const operation of operationNames) operationDuration.zero({ operation });
    this.operationDuration = operationNames.map((operation) => operationDuration.labels(operation));
    this.reservationDuration = new Histogram({
      name: 'secventory_reservation_duration_seconds',
      help: "Time from a reserve command entering its product's mailbox to its answer",
      buckets: latencyBucketsSeconds,
      registers,
    });
    this.batchSize = new Histogram({
      name: 'secventory_batch_size_commands',
      help: 'Commands per committed batch (one transaction each)',
      buckets: batchSizeBuckets,
      registers,
    });
    this.batchCommitDuration = new Histogram({
      name: 'secventory_batch_commit_duration_seconds',
      help: 'Time to commit one batch in the database',
      buckets: latencyBucketsSeconds,
      registers,
    });
    [this.commitQueueWait, this.commitRoundTrip] = commitHistograms(registers);
    this.versionConflicts = new Counter({
      name: 'secventory_version_conflicts_total',
      help: 'Batches that found their product changed by another writer and were decided again',
      registers,
    });
    this.storageErrors = new Counter({
      name: 'secventory_storage_errors_total',
      help: 'Batches failed by a storage error (their commands answered 5xx)',
      registers,
    });
    this.invariantViolations = new Counter({
      name: 'secventory_invariant_violations_total',
      help: 'Broken invariants (programming errors): their commands answered 500 and the actor reloaded; alert on any',
      registers,
    });
    this.expiries = new Counter({
      name: 'secventory_expiries_total',
      help: 'Reservations expired by the sweeper',
      registers,
    });
    const stream = this.streamMetrics(registers);
    this.streamEventsSent = stream.eventsSent;
    this.streamDelay = stream.delay;
    this.registerGauges(registers);
    collectDefaultMetrics({ register: this.prometheus });
  }

  /** Cart operations: one count and one duration per operation on a cart, whatever its lines. */
  private cartMetrics(registers: PrometheusRegistry[]) {
    const total: Counter = new Counter({
      name: 'secventory_cart_operations_total',
      help:
        'Operations on reservations of several products (carts) answered, by operation and outcome, one per cart ' +
        'however many lines it has (ok; rejected: a business rule or a 4xx; error: a 5xx)',
      labelNames: ['operation', 'outcome'],
      registers,
      collect: () => {
        flushCounts(total, cartOperationNames, this.cartCounts, this.exportedCartCounts);
      },
    });
    for (const operation of cartOperationNames) {
      for (const outcome of outcomeNames) total.labels(operation, outcome).inc(0);
    }
    const cartOperationDuration = new Histogram({
      name: 'secventory_cart_operation_duration_seconds',
      help:
        "Time from a cart operation's arrival to its answer, the wait for all its products' actors " +
        'included, by operation',
      labelNames: ['operation'],
      buckets: latencyBucketsSeconds,
      registers,
    });
    for (const operation of cartOperationNames) cartOperationDuration.zero({ operation });
    return { total, duration: cartOperationNames.map((operation) => cartOperationDuration.labels(operation)) };
  }

  /** The registry takes this observer in its constructor, so it is handed over afterwards. */
  watch(engine: EngineGauges): void {
    this.engine = engine;
  }

  /** The event streams are built after the metrics, so they are handed over like the engine. */
  watchStreams(streams: StreamGauges): void {
    this.streams = streams;
  }

  get contentType(): string {
    return this.prometheus.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.prometheus.metrics();
  }

  // Arrow properties, not methods: a handler stays bound when a caller keeps it apart from this
  // object (as `const { commandCompleted } = observer` would).

  readonly commandCompleted = (_sku: string, command: Command, result: CommandResult, latencyMs: number): void => {
    const operation = operationIndex(command.type);
    const outcome = resultOutcome(result);
    const nowMs = Date.now();
    this.operationCounts[operation * outcomeCount + outcome]!++;
    this.recent.recordOperation(nowMs, outcome);
    // A refusal before any work took no time; counting it would make the latency look better.
    if (result.type === 'failed' && result.code === 'overloaded') return;
    this.operationDuration[operation]!.observe(latencyMs / 1000);
    if (command.type === 'reserve') {
      this.reservationDuration.observe(latencyMs / 1000);
      this.reservationLatency.record(latencyMs);
      this.recent.recordReservation(nowMs, latencyMs);
    }
  };

  /** Counted apart from the commands (secventory_cart_operations_total), and with them in /stats. */
  readonly cartCompleted = (op: CartOp, result: CommandResult, latencyMs: number): void => {
    const operation = cartOperationIndex(op.type);
    const outcome = resultOutcome(result);
    this.cartCounts[operation * outcomeCount + outcome]!++;
    this.recent.recordOperation(Date.now(), outcome);
    // A refusal before any work took no time; counting it would make the latency look better.
    if (result.type === 'failed' && result.code === 'overloaded') return;
    this.cartOperationDuration[operation]!.observe(latencyMs / 1000);
  };

  readonly batchCommitted = (event: BatchCommittedEvent): void => {
    this.batchSize.observe(event.commands);
    this.batchCommitDuration.observe(event.commitMs / 1000);
  };

  readonly commitStatement = (event: CommitStatementEvent): void => {
    this.commitQueueWait.observe(event.queuedMs / 1000);
    this.commitRoundTrip.observe(event.roundTripMs / 1000);
  };

  readonly versionConflict = (): void => {
    this.versionConflicts.inc();
  };

  readonly invariantViolated = (): void => {
    this.invariantViolations.inc();
  };

  readonly storageError = (): void => {
    this.storageErrors.inc();
  };

  readonly expiriesSwept = (count: number): void => {
    this.expiries.inc(count);
  };

  readonly eventsStreamed = (events: number, oldestAtMs: number): void => {
    this.streamEventsSent.inc(events);
    this.streamDelay.observe(Math.max(0, Date.now() - oldestAtMs) / 1000);
  };

  /** Figures since this service started, for /stats. */
  sinceStart(): SinceStart {
    let operations = 0;
    let rejected = 0;
    let errors = 0;
    for (const counts of [this.operationCounts, this.cartCounts]) {
      for (let i = 0; i < counts.length; i++) {
        const n = counts[i]!;
        operations += n;
        if (i % outcomeCount === outcomeRejected) rejected += n;
        else if (i % outcomeCount === outcomeError) errors += n;
      }
    }
    const latency = this.reservationLatency;
    return {
      startedAtMs: this.startedAtMs,
      operations,
      rejected,
      errors,
      reservations: latency.count,
      reservationLatencyMsMean: latency.meanMs(),
      reservationLatencyMsP99: bucketQuantileMs(latency.counts, 0, latency.count, 0.99),
    };
  }

  /**
   * Active reservations of every instance, from the database, at most activeReservationsCacheMs
   * old; null while the database does not answer (a stale count would hide the outage).
   * Concurrent callers share one query.
   */
  activeReservations(): Promise<number | null> {
    if (Date.now() - this.activeReservationsAtMs < activeReservationsCacheMs)
      return Promise.resolve(this.activeReservationsValue);
    this.activeReservationsQuery ??= this.activeReservationSource
      .countActiveReservations()
      .then(
        (count) => count,
        (error: unknown) => {
          if (error instanceof StorageError) return null;
          throw error;
        },
      )
      .then((value) => {
        this.activeReservationsValue = value;
        // A failure is remembered as long as a count, so a dead database is asked once a second.
        this.activeReservationsAtMs = Date.now();
        return value;
      })
      .finally(() => {
        this.activeReservationsQuery = undefined;
      });
    return this.activeReservationsQuery;
  }

  /** The event streams: what they wrote and how late, and gauges read from them at scrape time. */
  private streamMetrics(registers: PrometheusRegistry[]) {
    const eventsSent = new Counter({
      name: 'secventory_event_stream_events_sent_total',
      help: 'Events written to the event streams of this instance (an event sent to three streams counts three)',
      registers,
    });
    const delay = new Histogram({
      name: 'secventory_event_stream_delay_seconds',
      help:
        "Per page written to an event stream: time from its oldest event's decision (its `at`) to the write; " +
        'how far behind the log the streams are',
      buckets: streamDelayBucketsSeconds,
      registers,
    });
    const streams = () => this.streams;
    new Gauge({
      name: 'secventory_event_streams_open',
      help: 'Event streams (GET /events/stream) open on this instance',
      registers,
      collect() {
        this.set(streams()?.openCount ?? 0);
      },
    });
    new Gauge({
      name: 'secventory_event_stream_buffered_bytes',
      help: "Bytes written to this instance's event streams that their clients have not read yet (in the process)",
      registers,
      collect() {
        this.set(streams()?.bufferedBytes() ?? 0);
      },
    });
    new Gauge({
      name: 'secventory_event_stream_lag_positions',
      help:
        'Largest distance, in log positions (about one per event), from the newest event this instance has ' +
        'read to the last one a stream was given',
      registers,
      collect() {
        this.set(streams()?.lagPositionsMax() ?? 0);
      },
    });
    return { eventsSent, delay };
  }

  private registerGauges(registers: PrometheusRegistry[]): void {
    // prom-client calls collect() with the gauge as `this`: these read this object's state.
    const activeReservations = () => this.activeReservations();
    const engine = () => this.engine;
    new Gauge({
      name: 'secventory_active_reservations',
      help: 'Active reservations in the database (all instances), at most 1 s old; absent while the database does not answer',
      registers,
      async collect() {
        const count = await activeReservations();
        if (count === null) this.reset();
        else this.set(count);
      },
    });
    new Gauge({
      name: 'secventory_live_actors',
      help: 'Products whose actor is in memory on this instance',
      registers,
      collect() {
        this.set(engine()?.liveActors ?? 0);
      },
    });
    new Gauge({
      name: 'secventory_queue_depth',
      help: 'Commands waiting in the mailboxes of all actors of this instance',
      registers,
      collect() {
        this.set(engine()?.queueDepthTotal() ?? 0);
      },
    });
  }
}

/**
 * The hot path counts into a plain array, which costs an increment; prom-client's labelled inc()
 * would build a label hash per command. A scrape moves what was counted since the last one
 * (operation x outcome, in `counts`; `exported` is what earlier scrapes moved) into the counter.
 */
function flushCounts(
  counter: Counter<'operation' | 'outcome'>,
  operations: readonly string[],
  counts: Float64Array,
  exported: Float64Array,
): void {
  for (let o = 0; o < operations.length; o++) {
    for (let r = 0; r < outcomeCount; r++) {
      const i = o * outcomeCount + r;
      const delta = counts[i]! - exported[i]!;
      if (delta === 0) continue;
      counter.labels(operations[o]!, outcomeNames[r]!).inc(delta);
      exported[i] = counts[i]!;
    }
  }
}

/** Where a group commit's time goes: the wait before its statement is sent, and the statement's round trip. */
function commitHistograms(registers: PrometheusRegistry[]): [Histogram, Histogram] {
  const queueWait = new Histogram({
    name: 'secventory_commit_queue_wait_seconds',
    help: "Time a product's batch waited for its statement to be sent (its previous statement still running)",
    buckets: latencyBucketsSeconds,
    registers,
  });
  const roundTrip = new Histogram({
    name: 'secventory_commit_round_trip_seconds',
    help: 'Time from sending a group-commit statement to reading its answer (database work, COMMIT, wire, event loop)',
    buckets: latencyBucketsSeconds,
    registers,
  });
  return [queueWait, roundTrip];
}
