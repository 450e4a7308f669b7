import type { Store } from './store.ts';
import type { CommandResult, IdempotencyRecord } from './types.ts';

/** The record of one key in its scope, or null when the key was never used there. */
export async function recordOf(store: Pick<Store, 'findRecords'>, scope: string, key: string) {
  const [record] = await store.findRecords([{ scope, key }]);
  return record ?? null;
}

/**
 * Keyed calls running in this instance, by slot (scope and key). A duplicate that arrives while
 * the first is running waits for it to end, then runs itself, and so finds the first one's record
 * and replays it. Across instances the record's unique key does the same (the second commit is
 * refused and looks the key up).
 */
export class CallsInFlight {
  private readonly running = new Map<string, Promise<unknown>>();

  async one<T>(scope: string, key: string, run: () => Promise<T>): Promise<T> {
    const slot = `${scope}\n${key}`;
    // Only to wait for its end: the first call's own caller gets its result, or its failure.
    while (this.running.has(slot)) await this.running.get(slot)!.catch(() => undefined);
    const call = run();
    this.running.set(slot, call);
    try {
      return await call;
    } finally {
      this.running.delete(slot);
    }
  }
}

/** What a key's record answers a call with `fingerprint`: the stored answer again, or a reused key. */
export function answerFromRecord(prior: IdempotencyRecord, fingerprint: string): CommandResult {
  return prior.fingerprint === fingerprint
    ? { type: 'done', outcome: prior.outcome, replayed: true }
    : { type: 'failed', code: 'idempotency_key_reused', reason: `key was used for ${prior.fingerprint}` };
}
