import fc from 'fast-check';
import type { Store } from '../../src/engine/store.ts';
import type { BatchWrite, CommandResult } from '../../src/engine/types.ts';

// fc.scheduler over storage: every storage call of the engine instances under test waits at a
// gate; the driver lets the system settle (no call in flight, every continuation parked at its
// next gate) and then the scheduler releases one gate of its choosing. So a run explores one
// interleaving of storage calls across actors, carts, instances and the sweeper, and a failing
// seed replays the same interleaving. Used by test/property/races.test.ts and carts-races.test.ts.

/** Turns of the driver before a race counts as never ending (a deadlock or a livelock). */
export const turnsMax = 5_000;
/** How often a client retries a 503 with the same request, as docs/API.md allows. */
export const retriesMax = 10;

export class StorageGate {
  /** Off while a run sets itself up and checks its results: calls pass straight through. */
  enabled = false;
  inFlight = 0;
  constructor(private readonly s: fc.Scheduler) {}

  /** Wraps every method of a store so that it starts only when the scheduler says so. */
  wrap(instance: string): (store: Store) => Store {
    return (store) =>
      new Proxy(store, {
        get: (target, property, receiver) => {
          const value = Reflect.get(target, property, receiver);
          if (typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            const label = `${instance}.${String(property)}(${describeArgs(args)})`;
            // A commit sent after another one settles (the cart lane's `after`) starts only then:
            // parked at the gate before it, it would count as in flight while waiting for a call
            // the scheduler has not let through yet, and the driver would wait for it forever.
            const after = args.find((arg) => arg instanceof Promise);
            if (after !== undefined) await (after as Promise<unknown>).catch(() => {});
            if (this.enabled) await this.s.schedule(Promise.resolve(), label);
            this.inFlight++;
            try {
              return await value.apply(target, args);
            } finally {
              this.inFlight--;
            }
          };
        },
      });
  }
}

function describeArgs(args: readonly unknown[]): string {
  const [first] = args;
  if (Array.isArray(first)) return first.map(describeArg).join(' & ');
  return describeArg(first);
}

function describeArg(arg: unknown): string {
  if (typeof arg === 'object' && arg !== null && 'versionBefore' in arg) return describeWrite(arg as BatchWrite);
  // A key in its scope (findRecords).
  if (typeof arg === 'object' && arg !== null && 'key' in arg) return String(arg.key).slice(-8);
  return typeof arg === 'string' ? arg.slice(0, 16) : '';
}

function describeWrite(w: BatchWrite): string {
  const events = w.events.map((e) => e.type).join('+') || 'no events';
  return `${w.sku.slice(-1)} v${w.versionBefore}->v${w.counters.version} ${events}`;
}

const settleTick = () => new Promise((resolve) => setImmediate(resolve));

/** Waits until no storage call is in flight and every continuation has run to its next gate. */
async function settle(gate: StorageGate): Promise<void> {
  for (;;) {
    while (gate.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 1));
    for (let i = 0; i < 3; i++) await settleTick();
    if (gate.inFlight === 0) return;
  }
}

/** Runs `work` to its end, releasing one gated storage call at a time in the scheduler's order. */
export async function drive<T>(s: fc.Scheduler, gate: StorageGate, work: Promise<T>): Promise<T> {
  let settled = false;
  work.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let turn = 0; turn < turnsMax; turn++) {
    await settle(gate);
    if (settled) return work;
    if (s.count() === 0) throw new Error('the work waits for something that is neither storage nor done (a deadlock)');
    await s.waitNext(1);
  }
  throw new Error(`the race did not end in ${turnsMax} turns`);
}

/** A client that retries a 503 with the same request (and so the same key). */
export async function driveRetrying(
  s: fc.Scheduler,
  gate: StorageGate,
  send: () => Promise<CommandResult>,
): Promise<CommandResult> {
  let result = await drive(s, gate, send());
  for (let i = 0; i < retriesMax && result.type === 'failed' && result.code === 'storage_unavailable'; i++) {
    result = await drive(s, gate, send());
  }
  return result;
}

/** Lets every storage call still parked at a gate through: also after a failed run. */
export async function releaseAll(s: fc.Scheduler, gate: StorageGate): Promise<void> {
  gate.enabled = false;
  for (let i = 0; i < turnsMax && s.count() > 0; i++) await s.waitNext(1);
}
