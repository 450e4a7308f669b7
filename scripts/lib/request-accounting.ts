import { answeredAtMs, isFinal, type Answer, type ApiClient } from './api-client.ts';
import { sleep } from './wait.ts';

// The client's side of the story: every request a client meant to make, every answer it got, and
// which of them were acknowledged or are still in doubt. The database (scripts/lib/acknowledged.ts)
// and the server's log must match it. Shared by the chaos tests, the proof and the bench.

/** One line of a cart: a product and how many of it. */
export interface CartLine {
  readonly sku: string;
  readonly quantity: number;
}

/**
 * A request a client meant to make. Each but `create` carries its Idempotency-Key, so it can be
 * retried safely. The `cart-` operations act on reservations of several products: a new cart's key
 * is scoped to its route, a cart operation's key to its reservation (docs/API.md).
 */
export type Operation =
  | { readonly kind: 'create'; readonly sku: string; readonly stock: number }
  | {
      readonly kind: 'reserve';
      readonly sku: string;
      readonly key: string;
      readonly quantity: number;
      readonly ttlSeconds: number;
    }
  | {
      readonly kind: 'purchase' | 'cancel';
      readonly sku: string;
      readonly key: string;
      readonly reservationId: string;
    }
  | {
      readonly kind: 'cart-reserve';
      readonly key: string;
      readonly lines: readonly CartLine[];
      readonly ttlSeconds: number;
    }
  | {
      readonly kind: 'cart-purchase';
      readonly key: string;
      readonly reservationId: string;
      /** What to buy of each line; null (no body) buys every line whole. */
      readonly lines: readonly CartLine[] | null;
    }
  | { readonly kind: 'cart-cancel'; readonly key: string; readonly reservationId: string }
  | { readonly kind: 'cart-extend'; readonly key: string; readonly reservationId: string; readonly ttlSeconds: number };

/** A keyed operation on one product: its key is scoped to that product. */
export type KeyedOperation = Extract<Operation, { kind: 'reserve' | 'purchase' | 'cancel' }>;
/** An operation on a reservation of several products. */
export type CartOperation = Extract<Operation, { kind: `cart-${string}` }>;

export const isKeyedProductOperation = (op: Operation): op is KeyedOperation =>
  op.kind === 'reserve' || op.kind === 'purchase' || op.kind === 'cancel';

export const isCartOperation = (op: Operation): op is CartOperation => op.kind.startsWith('cart-');

/** One operation and every answer it got, retries included, in order. */
export interface Attempted {
  readonly op: Operation;
  readonly answers: Answer[];
}

export const keyOf = (op: Operation): string | null => (op.kind === 'create' ? null : op.key);

/** Where the server keeps an operation's key (idempotency_records.sku): a product, a route or a reservation. */
export function scopeOf(op: Operation): string {
  switch (op.kind) {
    case 'create':
    case 'reserve':
    case 'purchase':
    case 'cancel':
      return op.sku;
    case 'cart-reserve':
      return '/reservations';
    case 'cart-purchase':
    case 'cart-cancel':
    case 'cart-extend':
      return `/reservations/${op.reservationId}`;
    default: {
      const unreachable: never = op;
      throw new Error(`unknown operation ${JSON.stringify(unreachable)}`);
    }
  }
}

/** Sent again after this pause while an operation has no final answer: the server is away. */
const retryPauseMs = 100;

/**
 * Every operation a client sent and every answer to it. An operation with a final (2xx or 4xx)
 * answer was acknowledged; one with only 5xx or no answers is in doubt: it may have committed or
 * not, and only a retry with its key tells.
 */
export class OperationLog {
  readonly attempted: Attempted[] = [];
  /** Requests sent and not answered yet. */
  inFlight = 0;

  constructor(readonly client: ApiClient) {}

  start(op: Operation): Attempted {
    const entry: Attempted = { op, answers: [] };
    this.attempted.push(entry);
    return entry;
  }

  /** Sends the operation once more and records the answer. */
  async send(entry: Attempted): Promise<Answer> {
    this.inFlight++;
    try {
      const answer = await this.request(entry.op);
      entry.answers.push(answer);
      return answer;
    } finally {
      this.inFlight--;
    }
  }

  private request(op: Operation): Promise<Answer> {
    switch (op.kind) {
      case 'create':
        return this.client.send('POST', '/products', { body: { sku: op.sku, name: op.sku, stock: op.stock } });
      case 'reserve':
        return this.client.send('POST', `/products/${op.sku}/reservations`, {
          key: op.key,
          body: { quantity: op.quantity, ttlSeconds: op.ttlSeconds },
        });
      case 'purchase':
      case 'cancel':
        return this.client.send('POST', `/reservations/${op.reservationId}/${op.kind}`, { key: op.key });
      case 'cart-reserve':
        return this.client.send('POST', '/reservations', {
          key: op.key,
          body: { lines: op.lines, ttlSeconds: op.ttlSeconds },
        });
      case 'cart-purchase':
        return this.client.send('POST', `/reservations/${op.reservationId}/purchase`, {
          key: op.key,
          body: op.lines === null ? undefined : { lines: op.lines },
        });
      case 'cart-cancel':
        return this.client.send('POST', `/reservations/${op.reservationId}/cancel`, { key: op.key });
      case 'cart-extend':
        return this.client.send('POST', `/reservations/${op.reservationId}/extend`, {
          key: op.key,
          body: { ttlSeconds: op.ttlSeconds },
        });
      default: {
        const unreachable: never = op;
        throw new Error(`unknown operation ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /** Starts and sends an operation that must succeed (set-up before anything goes wrong); throws otherwise. */
  async acknowledged(op: Operation): Promise<Answer> {
    const answer = await this.send(this.start(op));
    if (answer.status === null || answer.status >= 300) {
      throw new Error(`${op.kind} ${scopeOf(op)}: answered ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return answer;
  }

  /** Operations without a final (2xx or 4xx) answer: not acknowledged, so in doubt. */
  open(): Attempted[] {
    return this.attempted.filter((e) => !e.answers.some(isFinal));
  }

  /** How many operations have a final answer. */
  finalCount(): number {
    return this.attempted.filter((e) => e.answers.some(isFinal)).length;
  }

  /** Retries every open operation with its own key until it has a final answer; returns them. */
  async retryOpen(deadlineMs: number): Promise<Attempted[]> {
    const open = this.open();
    const stopAtMs = Date.now() + deadlineMs;
    await Promise.all(
      open.map(async (entry) => {
        while (!isFinal(await this.send(entry))) {
          if (Date.now() > stopAtMs) {
            const last = JSON.stringify(entry.answers.at(-1));
            throw new Error(`${entry.op.kind} ${keyOf(entry.op)} got no final answer within ${deadlineMs} ms: ${last}`);
          }
          await sleep(retryPauseMs);
        }
      }),
    );
    return open;
  }

  answers(): Answer[] {
    return this.attempted.flatMap((e) => e.answers);
  }

  /** Answers that arrived at or after `fromMs` to requests sent before `untilMs`: those that met an outage. */
  answersDuring(fromMs: number, untilMs: number): Answer[] {
    return this.answers().filter((a) => answeredAtMs(a) >= fromMs && a.sentAtMs < untilMs);
  }
}

/**
 * Of operations retried after a failure, those whose first final answer was a replay: they had
 * committed before the failure, but their client was never told (in doubt, and then kept).
 */
export function committedUnacknowledged(retried: readonly Attempted[]): number {
  return retried.filter((e) => e.answers.find(isFinal)?.replayed === true).length;
}

export interface LoadOptions {
  readonly workers: number;
  /** The next operation of worker `w`'s `i`-th step; null ends that worker. */
  readonly next: (w: number, i: number) => Operation | null;
  /** After a reservation was answered 201: the operation to follow it with at once, if any. */
  readonly then?: (reserved: { id: string; sku: string }, w: number, i: number) => Operation | null;
}

export interface Load {
  /** Stops sending; resolves when every worker's last request has been answered or failed. */
  stop(): Promise<void>;
}

/** While the server or its database is away a worker pauses this long after a failed request. */
const failedPauseMs = 50;

/**
 * Workers sending operations back to back until stopped. An unanswered request is left for the
 * retry pass (as a client would after a 503), and a failed request is followed by a short pause,
 * so the load does not spin while the server or its database is away.
 */
export function startLoad(log: OperationLog, options: LoadOptions): Load {
  let stopped = false;
  const workers = Array.from({ length: options.workers }, async (_, w) => {
    for (let i = 0; !stopped; i++) {
      const op = options.next(w, i);
      if (op === null) return;
      const answer = await log.send(log.start(op));
      if (op.kind === 'reserve' && answer.status === 201 && options.then !== undefined && !stopped) {
        const follow = options.then({ id: answer.body.id, sku: op.sku }, w, i);
        if (follow !== null) await log.send(log.start(follow));
      }
      if (!isFinal(answer)) await sleep(failedPauseMs);
    }
  });
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
}
