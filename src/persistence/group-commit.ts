import { assert } from '../engine/errors.ts';
import { groupProductsMax, groupsInFlightMax } from '../engine/limits.ts';
import type { CommitStatementEvent } from '../engine/observer.ts';
import type { CommitResult } from '../engine/store.ts';
import type { BatchWrite, IdempotencyRecord } from '../engine/types.ts';
import { commitBatchesSql, commitValues } from './commit-columns.ts';
import { statusConflictSqlState, storageError, type DatabasePool } from './database.ts';

interface Waiting {
  readonly write: BatchWrite;
  /** performance.now() when the actor handed it over. */
  readonly queuedAtMs: number;
  readonly resolve: (result: CommitResult) => void;
  readonly reject: (error: unknown) => void;
}

type Refusal = null | { conflict?: true; known?: IdempotencyRecord[] };

/** secventory_commit_batches answers one row whose `results` (jsonb) resultsOf reads. */
interface CommitRow {
  results: unknown;
}

/** One result per batch, in the group's order: anything else is a broken contract with the SQL function. */
export function resultsOf(refusals: unknown, batches: number): CommitResult[] {
  assert(Array.isArray(refusals), 'the commit function answers an array');
  assert(
    refusals.length === batches,
    `the commit function answers one result per batch (${refusals.length} for ${batches})`,
  );
  return (refusals as Refusal[]).map(resultOf);
}

function resultOf(refusal: Refusal): CommitResult {
  if (refusal === null) return { type: 'committed' };
  if (refusal.known !== undefined) return { type: 'known', records: refusal.known };
  return { type: 'conflict' };
}

/**
 * Group commit across products. Every actor commits its own batch; batches that wait at the
 * same moment go to the database together, in one statement and one transaction, each still
 * guarded by its own product's version. A failure of the whole statement fails every batch in it
 * (each is then in doubt, as always).
 */
export class GroupCommitter {
  private waiting: Waiting[] = [];
  private inFlight = 0;
  /**
   * Products with a statement in flight. An actor sends its next batch while the previous one
   * commits; that batch waits here until the previous statement has returned. Sent at once on
   * another connection it could take the product's row lock first, find the version it was
   * decided on not there yet, and conflict.
   */
  private readonly skusInFlight = new Set<string>();
  private flushScheduled = false;

  constructor(
    private readonly pool: DatabasePool,
    private readonly onStatement: (event: CommitStatementEvent) => void = () => {},
  ) {}

  /**
   * Carts' writes, alone in their own statement: a refusal of one product refuses all, which must
   * not take unrelated batches down with it. The cart lane holds its products' actors, so none of
   * them has an actor's batch in flight here. The parameters are built at once, and the statement
   * is sent once `after` (the lane's batch before, still committing) has settled: the time spent
   * building them overlaps that commit.
   */
  async commitAllOrNothing(writes: readonly BatchWrite[], after?: Promise<unknown>): Promise<CommitResult> {
    const sorted = [...writes].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
    const values = commitValues(sorted, true);
    if (after !== undefined) await after.catch(() => {});
    try {
      const { rows } = await this.pool.query<CommitRow>({
        name: 'commit_batches_all_or_nothing',
        text: commitBatchesSql,
        values,
      });
      const results = resultsOf(rows[0]?.results, sorted.length);
      assert(
        results.every((r) => r.type === 'committed'),
        'an all-or-nothing group commits every product or raises',
      );
      return { type: 'committed' };
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === statusConflictSqlState || code === '23505') return { type: 'conflict' };
      if (error instanceof Error && error.name === 'InvariantViolation') throw error;
      throw storageError(error, `commit of a cart over ${writes.length} products`);
    }
  }

  commit(write: BatchWrite): Promise<CommitResult> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ write, queuedAtMs: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushScheduled || this.inFlight >= groupsInFlightMax || this.waiting.length === 0) return;
    this.flushScheduled = true;
    // After the current turn, so that batches decided in the same turn travel together.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < groupsInFlightMax && this.waiting.length > 0) {
      const group = this.takeGroup();
      if (group.length === 0) break;
      void this.send(group);
    }
  }

  /**
   * The next group: at most groupProductsMax batches, at most one per product, and none of a
   * product that has a statement in flight. An actor's batches come in order, and two engines
   * over one store could both commit a product; the statement must never see a product twice
   * (its version guard would pass both).
   */
  private takeGroup(): Waiting[] {
    const group: Waiting[] = [];
    const skus = new Set<string>();
    const rest: Waiting[] = [];
    for (const next of this.waiting) {
      const sku = next.write.sku;
      if (group.length < groupProductsMax && !skus.has(sku) && !this.skusInFlight.has(sku)) {
        skus.add(sku);
        group.push(next);
      } else {
        rest.push(next);
      }
    }
    this.waiting = rest;
    return group;
  }

  /**
   * Sends a group and, once its statement has returned, sends the batches that waited for it
   * before answering this group's actors: answering a few hundred requests takes the event loop
   * milliseconds, and the next statement need not wait for that (it was decided on top of this
   * one and is guarded by this one's outcome, whatever it is).
   */
  private async send(group: Waiting[]): Promise<void> {
    this.inFlight++;
    for (const g of group) this.skusInFlight.add(g.write.sku);
    let settle: () => void;
    try {
      settle = await this.sendGroup(group);
    } catch (error) {
      // A write the statement could not even be built from: a programming error for each batch.
      settle = () => group.forEach((g) => g.reject(error));
    }
    this.inFlight--;
    for (const g of group) this.skusInFlight.delete(g.write.sku);
    this.flush();
    settle();
  }

  /** Runs the group's statement; what it answers each batch is applied by the returned function. */
  private async sendGroup(unordered: Waiting[]): Promise<() => void> {
    // Product rows are locked in SKU order, the same in every instance: two instances' groups
    // can wait for each other but never deadlock.
    const group = unordered.sort((a, b) => (a.write.sku < b.write.sku ? -1 : a.write.sku > b.write.sku ? 1 : 0));
    const values = commitValues(
      group.map((g) => g.write),
      false,
    );
    let results: unknown;
    try {
      const sentMs = performance.now();
      const { rows } = await this.pool.query<CommitRow>({ name: 'commit_batches', text: commitBatchesSql, values });
      results = rows[0]?.results;
      const queuedMs = sentMs - Math.min(...group.map((g) => g.queuedAtMs));
      this.onStatement({ batches: group.length, queuedMs, roundTripMs: performance.now() - sentMs });
    } catch (error) {
      // Someone wrote behind a version (see the migration): every product of the group reloads.
      const code = (error as { code?: string }).code;
      if (code === statusConflictSqlState || code === '23505') {
        return () => group.forEach((g) => g.resolve({ type: 'conflict' }));
      }
      const failure = storageError(error, `commit of ${group.length} batches`);
      return () => group.forEach((g) => g.reject(failure));
    }
    // A refused row (say a CHECK constraint) fails the whole statement above as a non-transient
    // error: each actor then retries its commands one by one, so the poisoned one fails alone.
    let settled: CommitResult[];
    try {
      settled = resultsOf(results, group.length);
    } catch (error) {
      // The statement committed, but what it says of each batch cannot be read: every batch of
      // the group is a programming error, and its actor reloads from the database.
      return () => group.forEach((g) => g.reject(error));
    }
    return () => group.forEach((g, i) => g.resolve(settled[i]!));
  }
}
