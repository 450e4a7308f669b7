import type { Clock } from './clock.ts';
import { StorageError } from './errors.ts';
import {
  idempotencyCleanupBatchMax,
  idempotencyRetentionMs,
  sweepBatchSizeMax,
  sweepRoundsPerTickMax,
} from './limits.ts';
import type { EngineObserver } from './observer.ts';
import type { Registry } from './registry.ts';
import type { DueReservation, Store } from './store.ts';
import type { CommandResult } from './types.ts';

export interface SweepReport {
  readonly due: number;
  readonly expired: number;
  readonly failed: number;
}

/**
 * Finds active reservations whose expiry has passed and sends each an `expire` command through
 * its product's mailbox, so expiry is serialized with everything else that product does (G6).
 * The first tick after a start reconciles whatever expired while the service or database was down.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly sweepIntervalMs: number,
    private readonly observer: EngineObserver = {},
    private readonly onError: (error: Error) => void = () => {},
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    const tick = () => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.sweepIntervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One sweep: expire what is due, in bounded rounds; then drop old idempotency records. */
  async sweepOnce(): Promise<SweepReport> {
    let due = 0;
    let expired = 0;
    let failed = 0;
    for (let round = 0; round < sweepRoundsPerTickMax; round++) {
      const batch = await this.store.findDueReservations(this.clock.nowMs(), sweepBatchSizeMax);
      const results = await Promise.all(
        expiries(batch).map((r) =>
          r.lines === 1
            ? this.registry.execute(r.sku, { type: 'expire', reservationId: r.id })
            : // A cart expires as a whole, all its products in one transaction.
              this.registry.executeReservationOp({ type: 'expire', reservationId: r.id }),
        ),
      );
      const tally = tallyRound(results);
      due += batch.length;
      expired += tally.expired;
      failed += tally.failed;
      if (!sweepAgain(batch.length, tally.failed)) break;
    }
    if (expired > 0) this.observer.expiriesSwept?.(expired);
    await this.store.deleteIdempotencyRecordsBefore(
      this.clock.nowMs() - idempotencyRetentionMs,
      idempotencyCleanupBatchMax,
    );
    return { due, expired, failed };
  }

  private async tick(): Promise<void> {
    try {
      await this.sweepOnce();
    } catch (error) {
      // The database is away; the next tick tries again and reconciles what is due by then.
      if (error instanceof StorageError) this.onError(error);
      else this.observer.invariantViolated?.('', error instanceof Error ? error : new Error(String(error)));
    }
  }
}

/** What one round of expire commands did. */
export function tallyRound(results: readonly CommandResult[]): { expired: number; failed: number } {
  let expired = 0;
  let failed = 0;
  for (const result of results) {
    if (result.type === 'failed') failed++;
    else if (result.outcome.kind === 'reservation') expired++;
  }
  return { expired, failed };
}

/**
 * Another round only after a full one in which something moved: a partial round found all that
 * was due, and a round whose every command failed (say all overloaded) would only fail again.
 */
export function sweepAgain(roundSize: number, roundFailed: number): boolean {
  return roundSize === sweepBatchSizeMax && roundFailed < roundSize;
}

/** One expiry per reservation: the lines of a cart are due together. */
function expiries(due: readonly DueReservation[]): DueReservation[] {
  const seen = new Set<string>();
  return due.filter((r) => r.lines === 1 || (!seen.has(r.id) && seen.add(r.id) !== undefined));
}
