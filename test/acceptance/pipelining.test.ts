import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/engine/clock.ts';
import { StorageError } from '../../src/engine/errors.ts';
import { batchesInFlightMax } from '../../src/engine/limits.ts';
import type { CommitResult, Store } from '../../src/engine/store.ts';
import type { BatchWrite, Command, CommandResult } from '../../src/engine/types.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';
import { createTestDatabase, waitUntil, type TestDatabase } from '../support/database.ts';
import { startEngine, type EngineInstance } from '../support/engine.ts';

// An actor decides and sends its next batch while the database commits the previous one. These
// tests hold commits back to look at what is in flight, and break the batch underneath to show
// that what was decided on top of it never commits on a state that did not exist.

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** A store whose commits can be held at the door; every commit it sees is recorded. */
class GatedStore {
  readonly commits: { write: BatchWrite; result?: CommitResult; settledAtMs?: number }[] = [];
  private held: (() => void)[] = [];
  holding = false;
  /** Commits (by index) that go through and then fail as if the connection broke: in doubt. */
  readonly failAfterCommit = new Set<number>();

  constructor(private readonly inner: Store) {}

  wrap(): Store {
    return new Proxy(this.inner, {
      get: (target, name, receiver) => {
        if (name !== 'commitBatch') return Reflect.get(target, name, receiver);
        return async (write: BatchWrite) => {
          const record: (typeof this.commits)[number] = { write };
          const index = this.commits.push(record) - 1;
          if (this.holding) await new Promise<void>((release) => this.held.push(release));
          const result = await target.commitBatch(write);
          record.result = result;
          record.settledAtMs = performance.now();
          if (this.failAfterCommit.has(index))
            throw new StorageError('connection lost after COMMIT was sent', true, '08006');
          return result;
        };
      },
    });
  }

  get heldCount(): number {
    return this.held.length;
  }

  release(): void {
    this.holding = false;
    for (const r of this.held.splice(0)) r();
  }
}

async function engineWithGate(db: TestDatabase): Promise<{ engine: EngineInstance; gate: GatedStore }> {
  let gate: GatedStore | undefined;
  const engine = startEngine(db.url, systemClock, { wrapStore: (store) => (gate = new GatedStore(store)).wrap() });
  cleanup.push(() => engine.stop());
  return { engine, gate: gate! };
}

const reserve = (quantity = 1): Extract<Command, { type: 'reserve' }> => ({
  type: 'reserve',
  reservationId: randomUUID(),
  quantity,
  ttlSeconds: 600,
  idempotencyKey: randomUUID(),
  requestId: 'pipelining-test',
});

describe('pipelined batches of one product', () => {
  it('G4 G5: the next batch is decided and sent while the previous one commits, and nobody is answered before their own commit', async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const { engine, gate } = await engineWithGate(db);
    await engine.registry.createProduct('PIPE-1', 'pipe', 1000, 'test');

    gate.holding = true;
    const answeredAtMs = new Map<string, number>();
    const submit = (): Promise<CommandResult> => {
      const command = reserve();
      return engine.registry.execute('PIPE-1', command).then((r) => {
        answeredAtMs.set(command.reservationId, performance.now());
        return r;
      });
    };
    const first = submit();
    await waitUntil(() => gate.heldCount === 1, 5_000, 'the first batch reaches the store');
    const more = Array.from({ length: 9 }, submit);
    // The next batch is decided on top of the first and sent although the first has not
    // committed: two commits of one product in flight, never more; the rest wait their turn.
    await waitUntil(() => gate.heldCount === batchesInFlightMax, 5_000, 'the second batch reaches the store');
    await new Promise((r) => setTimeout(r, 100));
    expect(gate.heldCount).toBe(batchesInFlightMax);
    expect(answeredAtMs.size).toBe(0);
    const [a, b] = gate.commits;
    expect(b!.write.versionBefore).toBe(a!.write.counters.version);
    expect(b!.write.hashBefore).toBe(a!.write.events.at(-1)!.hash);

    gate.release();
    const results = await Promise.all([first, ...more]);
    expect(results.every((r) => r.type === 'done' && r.outcome.kind === 'reservation')).toBe(true);
    expect(gate.commits.length).toBeGreaterThan(batchesInFlightMax);
    expect(gate.commits.every((c) => c.result?.type === 'committed')).toBe(true);
    // Each caller was answered only after the commit of its own batch returned.
    for (const commit of gate.commits) {
      for (const r of commit.write.inserted)
        expect(answeredAtMs.get(r.id)!).toBeGreaterThanOrEqual(commit.settledAtMs!);
    }
    const { rows } = await db.sql.query(`select reserved::int, version::int from products where sku = 'PIPE-1'`);
    expect(rows[0]).toEqual({ reserved: 10, version: 11 });
    expect(await databaseViolations(db.sql)).toEqual([]);
  });

  it('G1 G4: when a batch does not commit, the batch decided on top of it is refused by its chain head even if the version matches, and both are decided again', async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const { engine: a, gate } = await engineWithGate(db);
    const b = startEngine(db.url, systemClock);
    cleanup.push(() => b.stop());
    await a.registry.createProduct('PIPE-2', 'pipe', 1000, 'test');

    // A's first batch (one reservation, version 1 -> 2) is held before it reaches the database.
    gate.holding = true;
    const first = a.registry.execute('PIPE-2', reserve(1));
    await waitUntil(() => gate.heldCount === 1, 5_000, 'the first batch reaches the store');
    gate.holding = false;
    // Meanwhile another instance writes exactly as many events (version 1 -> 2), with another effect.
    const other = await b.registry.execute('PIPE-2', reserve(5));
    expect(other.type === 'done' && other.outcome.kind === 'reservation').toBe(true);
    // A's next batch is decided on top of its first: version 2 and the first's chain head.
    const second = a.registry.execute('PIPE-2', reserve(1));
    await waitUntil(() => gate.commits[1]?.result !== undefined, 5_000, 'the second batch is answered by the database');
    // The version alone would have let it through (and written counters that never saw B's
    // reservation); the chain head did not.
    expect(gate.commits[1]!.write.versionBefore).toBe(2);
    expect(gate.commits[1]!.result).toEqual({ type: 'conflict' });

    gate.release();
    const results = await Promise.all([first, second]);
    expect(results.every((r) => r.type === 'done' && r.outcome.kind === 'reservation')).toBe(true);
    const { rows } = await db.sql.query(`
      select p.reserved::int, (select coalesce(sum(quantity), 0)::int from reservations r where r.sku = p.sku and r.status = 'active') as rows_sum
        from products p where sku = 'PIPE-2'`);
    expect(rows[0]).toEqual({ reserved: 5 + 1 + 1, rows_sum: 5 + 1 + 1 });
    expect(await databaseViolations(db.sql)).toEqual([]);
  });

  it('G2 G5: when a batch fails in doubt but did commit, the batch decided on top of it commits and is answered, and a retry of the first replays its outcome', async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const { engine, gate } = await engineWithGate(db);
    await engine.registry.createProduct('PIPE-3', 'pipe', 1000, 'test');

    gate.holding = true;
    gate.failAfterCommit.add(0);
    const firstCommand = reserve(1);
    const first = engine.registry.execute('PIPE-3', firstCommand);
    await waitUntil(() => gate.heldCount === 1, 5_000, 'the first batch reaches the store');
    const second = engine.registry.execute('PIPE-3', reserve(2));
    await waitUntil(() => gate.heldCount === 2, 5_000, 'the second batch reaches the store');
    expect(gate.commits[1]!.write.versionBefore).toBe(gate.commits[0]!.write.counters.version);
    gate.release();

    // The first is in doubt: its caller is told so, though the database has it.
    const firstResult = await first;
    expect(firstResult).toMatchObject({ type: 'failed', code: 'storage_unavailable' });
    expect(gate.commits[0]!.result).toEqual({ type: 'committed' });
    // The second was decided on top of it, and its base exists: durable, so it is answered.
    const secondResult = await second;
    expect(
      secondResult.type === 'done' && secondResult.outcome.kind === 'reservation' && secondResult.outcome.created,
    ).toBe(true);
    expect(gate.commits[1]!.result).toEqual({ type: 'committed' });

    // A retry under the first key replays what was committed instead of reserving again.
    const retry = await engine.registry.execute('PIPE-3', {
      ...reserve(1),
      idempotencyKey: firstCommand.idempotencyKey,
    });
    expect(retry).toMatchObject({ type: 'done', replayed: true });
    expect(retry.type === 'done' && retry.outcome.kind === 'reservation' && retry.outcome.reservation.id).toBe(
      firstCommand.reservationId,
    );
    const { rows } = await db.sql.query(
      `select reserved::int, (select count(*)::int from reservations where sku = 'PIPE-3') as rows from products where sku = 'PIPE-3'`,
    );
    expect(rows[0]).toEqual({ reserved: 3, rows: 2 });
    expect(await databaseViolations(db.sql)).toEqual([]);
  });
  it('G4: extensions of one reservation sent at once, several in one batch, all commit: one change of its row per batch', async () => {
    const db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const { engine, gate } = await engineWithGate(db);
    await engine.registry.createProduct('PIPE-4', 'pipe', 10, 'test');
    const reserved = await engine.registry.execute('PIPE-4', reserve());
    const id =
      reserved.type === 'done' && reserved.outcome.kind === 'reservation' ? reserved.outcome.reservation.id : '';
    const extend = (ttlSeconds: number) =>
      engine.registry.executeReservationOp({
        type: 'extend',
        reservationId: id,
        ttlSeconds,
        idempotencyKey: null,
        requestId: 'pipelining-test',
      });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => extend(600 + i)));
    expect(results.map((r) => r.type === 'done' && r.outcome.kind)).toEqual(Array(10).fill('reservation'));
    // The first went out alone; the others waited for it, and several of them were one batch.
    const extensions = gate.commits.slice(1).map((c) => c.write.events.length);
    expect(extensions.reduce((a, b) => a + b)).toBe(10);
    expect(Math.max(...extensions), 'extensions of one reservation in one batch').toBeGreaterThan(1);
    expect(gate.commits.every((c) => c.result?.type === 'committed')).toBe(true);
    const { rows } = await db.sql.query(`select count(*)::int as n from inventory_events where type = 'extended'`);
    expect(rows[0].n).toBe(10);
    expect(await databaseViolations(db.sql)).toEqual([]);
  });
});
