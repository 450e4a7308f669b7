import { isFinal, type Answer } from '../../scripts/lib/api-client.ts';
import type { CartLine, Operation, OperationLog } from '../../scripts/lib/request-accounting.ts';
import { sleep } from '../../scripts/lib/wait.ts';

// Clients shopping with carts while something fails under them: each reserves a cart, may extend
// it, then buys part of it, buys all of it or cancels it, every request with its own
// Idempotency-Key. A request without a final answer ends its client's journey there and is left
// to the caller's retry pass (OperationLog.retryOpen), as a client would retry after a 503.

export interface CartLoadOptions {
  readonly workers: number;
  /** Names this load's keys, so that rounds never share one. */
  readonly tag: string;
  /** The lines of worker `w`'s `i`-th cart. */
  readonly linesOf: (w: number, i: number) => CartLine[];
}

export interface CartLoad {
  /** Stops starting journeys; resolves when every worker's last request has been answered or failed. */
  stop(): Promise<void>;
}

/** While the server or its database is away a worker pauses this long after a failed request. */
const failedPauseMs = 50;
/** An extension asks for this much more time: well within the 24 h cap, so it never refuses. */
const extendTtlSeconds = 900;

/** Sends one operation; the answer, or null when it was not final (the journey stops there). */
async function step(log: OperationLog, op: Operation): Promise<Answer | null> {
  const answer = await log.send(log.start(op));
  if (isFinal(answer)) return answer;
  await sleep(failedPauseMs);
  return null;
}

/** How journey `i` ends: a third buy part (1 unit of the first line, none of the rest), a third all, a third cancel. */
function finishOf(i: number, id: string, lines: readonly CartLine[], key: string): Operation {
  switch (i % 3) {
    case 0:
      return { kind: 'cart-purchase', key, reservationId: id, lines: [{ sku: lines[0]!.sku, quantity: 1 }] };
    case 1:
      return { kind: 'cart-purchase', key, reservationId: id, lines: null };
    default:
      return { kind: 'cart-cancel', key, reservationId: id };
  }
}

async function journey(
  log: OperationLog,
  options: CartLoadOptions,
  w: number,
  i: number,
  stopped: () => boolean,
): Promise<void> {
  const lines = options.linesOf(w, i);
  const name = `${options.tag}-${w}-${i}`;
  const reserved = await step(log, { kind: 'cart-reserve', key: `${name}-reserve`, lines, ttlSeconds: 600 });
  if (reserved?.status !== 201 || stopped()) return;
  const id = String(reserved.body.id);
  if (i % 2 === 0) {
    const extended = await step(log, {
      kind: 'cart-extend',
      key: `${name}-extend`,
      reservationId: id,
      ttlSeconds: extendTtlSeconds,
    });
    if (extended === null || stopped()) return;
  }
  await step(log, finishOf(i, id, lines, `${name}-finish`));
}

/** Workers going through cart journeys back to back until stopped. */
export function startCartLoad(log: OperationLog, options: CartLoadOptions): CartLoad {
  let stopped = false;
  const workers = Array.from({ length: options.workers }, async (_, w) => {
    for (let i = 0; !stopped; i++) await journey(log, options, w, i, () => stopped);
  });
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
}
