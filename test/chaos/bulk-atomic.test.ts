import { beforeAll, describe, expect, it } from 'vitest';
import { isFinal, type Answer } from '../../scripts/lib/api-client.ts';
import { sleep, waitUntil } from '../../scripts/lib/wait.ts';
import {
  chaosRigFor,
  chaosRounds,
  expectDatabaseConsistent,
  report,
  retryWithinMs,
  shortTimeouts,
} from '../support/chaos.ts';

// Atomic bulk stock adjustments in flight when PostgreSQL is SIGKILLed, then restarted on the same
// data directory. An atomic call commits every product's event and its key's record in one
// transaction, so whatever the kill interrupted, each call is found in the database whole (every
// product adjusted, or every product's refusal recorded) or not at all; what was acknowledged is
// there as answered; and every call retried with its key takes effect once.

const ample = ['BULK-A', 'BULK-B', 'BULK-C', 'BULK-D', 'BULK-E', 'BULK-F'];
/** Has no stock: a call that takes one of it is refused whole (409), audited on every product. */
const scarce = 'BULK-SCARCE';
const initialStock = 1_000_000;
const rig = chaosRigFor(shortTimeouts, ample);
const workers = 8;
/** Final answers before the kill, so that the kill lands in a running load. */
const answeredBeforeKill = 60;
const recoverWithinMs = 10_000;

interface Item {
  readonly sku: string;
  readonly delta: number;
  readonly reason: string;
}

/** One call and every answer it got, retries included. */
interface Call {
  readonly key: string;
  readonly items: readonly Item[];
  readonly answers: Answer[];
}

/**
 * Worker `w`'s `i`-th call: 3 or 4 of the ample products from a rotating start, in descending
 * order for even workers (so calls over the same products name them in opposite orders), each
 * with a delta of its own; every fifth takes one unit of the scarce product too. The reason names
 * the call, so its events can be found.
 */
function itemsOf(w: number, i: number, tag: string): Item[] {
  const size = 3 + ((w + i) % 2);
  const skus = Array.from({ length: size }, (_, k) => ample[(w + i + k) % ample.length]!).sort();
  if (w % 2 === 0) skus.reverse();
  const reason = `${tag}-${w}-${i}`;
  const items = skus.map((sku, k) => ({ sku, delta: k % 2 === 0 ? 2 : -1, reason }));
  return i % 5 === 0 ? [...items, { sku: scarce, delta: -1, reason }] : items;
}

const calls: Call[] = [];
const final = (c: Call) => c.answers.find(isFinal);

async function send(c: Call): Promise<Answer> {
  const answer = await rig().log.client.send('POST', '/stock-adjustments/bulk', {
    key: c.key,
    body: { adjustments: c.items, atomic: true },
  });
  c.answers.push(answer);
  return answer;
}

/** Each worker sends its calls one after another, each until it has a final answer or the load stops. */
function startLoad(tag: string): { stop: () => Promise<void> } {
  let stopped = false;
  const run = async (w: number) => {
    for (let i = 0; !stopped; i++) {
      const c: Call = { key: `${tag}-${w}-${i}`, items: itemsOf(w, i, tag), answers: [] };
      calls.push(c);
      while (!stopped && !isFinal(await send(c))) await sleep(100);
    }
  };
  const running = Promise.all(Array.from({ length: workers }, (_, w) => run(w)));
  return {
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

/** Every call without a final answer, retried with its key until it has one. */
async function retryOpen(): Promise<number> {
  const open = calls.filter((c) => final(c) === undefined);
  await Promise.all(
    open.map((c) =>
      waitUntil(async () => isFinal(await send(c)), retryWithinMs, `call ${c.key} answered after the outage`, 100),
    ),
  );
  return open.length;
}

/** Per call (by its reason): its events' types, how many, and how many transactions wrote them. */
async function effects(): Promise<Map<string, { types: string[]; transactions: number }>> {
  const { rows } = await rig().sql.query(`
    select reason, array_agg(type order by sku) as types, count(distinct tx_id)::int as transactions
      from inventory_events where reason is not null group by reason`);
  return new Map(rows.map((r) => [r.reason as string, { types: r.types as string[], transactions: r.transactions }]));
}

describe('atomic bulk adjustments in flight when PostgreSQL is SIGKILLed, then restarted', () => {
  let inDoubt = 0;

  beforeAll(async () => {
    const r = rig();
    await r.log.acknowledged({ kind: 'create', sku: scarce, stock: 0 });
    for (let round = 0; round < chaosRounds; round++) {
      const load = startLoad(`pg${round}`);
      const answered = () => calls.filter((c) => final(c) !== undefined).length;
      const before = answered();
      await waitUntil(() => answered() >= before + answeredBeforeKill, 30_000, 'bulk calls answered before the kill');
      const pids = await r.db.kill();
      // Clients keep coming while PostgreSQL is down: they are answered 503 and retry.
      await sleep(2_000);
      await r.db.restart();
      const recoveryMs = await waitUntil(
        async () => (await r.log.client.send('GET', '/health/ready')).status === 200,
        recoverWithinMs,
        'the app ready again',
      );
      await load.stop();
      const open = await retryOpen();
      inDoubt += open;
      // A 5xx followed by a replay: the transaction committed, the answer was lost with the database.
      const committedBut503 = calls.filter((c) => c.answers.some((a) => !isFinal(a)) && final(c)?.replayed).length;
      report('bulk atomic: PostgreSQL SIGKILL', {
        round,
        processesKilled: pids.length,
        recoveryMs,
        inDoubt: open,
        committedBut503,
      });
    }
  }, 150_000);

  it('every call has a final answer: 200 when it names only ample products, 409 when it takes the scarce one', () => {
    expect(calls.length).toBeGreaterThan(answeredBeforeKill);
    for (const c of calls) {
      const expected = c.items.some((i) => i.sku === scarce) ? 409 : 200;
      expect({ key: c.key, status: final(c)?.status }).toEqual({ key: c.key, status: expected });
    }
    const retried = calls.filter((c) => c.answers.some((a) => !isFinal(a)));
    expect(retried.length + inDoubt, 'calls that met the outage').toBeGreaterThan(0);
  });

  it('G4 G5: each call whole as answered: all adjusted (200) or all refused (409), in one transaction', async () => {
    const found = await effects();
    for (const c of calls) {
      const expected = final(c)!.status === 200 ? 'stock_adjusted' : 'rejected';
      const skus = c.items.map((i) => i.sku);
      expect({ key: c.key, ...found.get(c.items[0]!.reason) }).toEqual({
        key: c.key,
        types: skus.map(() => expected),
        transactions: 1,
      });
    }
  });

  it('G2: retried calls took effect once: each total is its stock moved by the calls answered 200', async () => {
    const expected = new Map<string, number>([...ample.map((sku) => [sku, initialStock] as const), [scarce, 0]]);
    for (const c of calls.filter((x) => final(x)!.status === 200)) {
      for (const i of c.items) expected.set(i.sku, expected.get(i.sku)! + i.delta);
    }
    const { rows } = await rig().sql.query(`select sku, total::int from products order by sku`);
    expect(Object.fromEntries(rows.map((r) => [r.sku, r.total]))).toEqual(Object.fromEntries(expected));
  });

  it('G2: sent once more, every call replays its stored answer and changes nothing', async () => {
    const sample = calls.filter((_, i) => i % 5 === 0);
    const before = await rig().sql.query(`select count(*)::int as n from inventory_events`);
    const again = await Promise.all(sample.map((c) => send(c)));
    expect(again.map((a) => [a.status, a.replayed])).toEqual(sample.map((c) => [final(c)!.status, true]));
    const after = await rig().sql.query(`select count(*)::int as n from inventory_events`);
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it('G1 G3 G4 G7: the SQL oracle and secventory verify find nothing wrong', async () => {
    await expectDatabaseConsistent(rig().db.url, rig().sql);
  });
});
