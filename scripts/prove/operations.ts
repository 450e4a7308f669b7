import { isFinal, type Answer, type ProofClient } from './http-client.ts';
import { sleep } from '../lib/wait.ts';

/** A request a client meant to make. Each carries its Idempotency-Key, so it can be retried safely. */
export type Operation =
  | { readonly kind: 'create'; readonly sku: string; readonly stock: number }
  | { readonly kind: 'reserve'; readonly sku: string; readonly key: string }
  | { readonly kind: 'purchase'; readonly sku: string; readonly key: string; readonly reservationId: string };

/** One operation and every answer it got, retries included, in order. */
export interface Attempted {
  readonly op: Operation;
  readonly answers: Answer[];
}

export const keyOf = (op: Operation): string | null => (op.kind === 'create' ? null : op.key);

/**
 * Every operation a scenario sent and every answer to it: the client's side of the story, which
 * the database and the server's log must match.
 */
export class OperationLog {
  readonly attempted: Attempted[] = [];
  /** Requests sent and not answered yet. */
  inFlight = 0;

  constructor(private readonly client: ProofClient) {}

  start(op: Operation): Attempted {
    const entry: Attempted = { op, answers: [] };
    this.attempted.push(entry);
    return entry;
  }

  /** Sends the operation once more and records the answer. */
  async send(entry: Attempted): Promise<Answer> {
    const { op } = entry;
    this.inFlight++;
    try {
      const answer = op.kind === 'create'
        ? await this.client.send('POST', '/products', { body: { sku: op.sku, name: op.sku, stock: op.stock } })
        : op.kind === 'reserve'
          ? await this.client.send('POST', `/products/${op.sku}/reservations`, { key: op.key, body: { quantity: 1, ttlSeconds: 600 } })
          : await this.client.send('POST', `/reservations/${op.reservationId}/purchase`, { key: op.key });
      entry.answers.push(answer);
      return answer;
    } finally {
      this.inFlight--;
    }
  }

  /** Operations without a final (2xx or 4xx) answer: not acknowledged, so in doubt. */
  open(): Attempted[] {
    return this.attempted.filter((e) => !e.answers.some(isFinal));
  }

  /** Retries every open operation with its own key until it has a final answer (bounded). */
  async retryOpen(deadlineMs: number): Promise<Attempted[]> {
    const open = this.open();
    const stopAtMs = Date.now() + deadlineMs;
    await Promise.all(open.map(async (entry) => {
      while (!isFinal(await this.send(entry))) {
        if (Date.now() > stopAtMs) throw new Error(`${entry.op.kind} ${keyOf(entry.op)} got no final answer within ${deadlineMs} ms`);
        await sleep(100);
      }
    }));
    return open;
  }

  answers(): Answer[] {
    return this.attempted.flatMap((e) => e.answers);
  }
}

export interface PurchaseLoad {
  /** Purchases that got a final answer since the load started. */
  purchasesAnswered(): number;
  /** Stops sending; resolves when every worker's last request has been answered or failed. */
  stop(): Promise<void>;
}

/**
 * Workers that purchase the given reservations back to back, each purchase with its own key; when
 * none is left, they reserve new ones and purchase those. An unanswered request is left for the
 * retry pass (as a client would after a 503), and a failed request is followed by a short pause,
 * so the load does not spin while the database is away.
 */
export function startPurchaseLoad(log: OperationLog, toPurchase: { id: string; sku: string }[], skus: readonly string[], workers: number): PurchaseLoad {
  let stopped = false;
  let purchasesAnswered = 0;
  const running = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; !stopped; i++) {
      const next = toPurchase.shift();
      const op: Operation = next === undefined
        ? { kind: 'reserve', sku: skus[(w + i) % skus.length]!, key: `c4-reserve-${w}-${i}` }
        : { kind: 'purchase', sku: next.sku, key: `buy-${next.id}`, reservationId: next.id };
      const answer = await log.send(log.start(op));
      if (op.kind === 'purchase' && isFinal(answer)) purchasesAnswered++;
      if (op.kind === 'reserve' && answer.status === 201) toPurchase.push({ id: answer.body.id, sku: op.sku });
      if (!isFinal(answer)) await sleep(50);
    }
  });
  return {
    purchasesAnswered: () => purchasesAnswered,
    stop: async () => {
      stopped = true;
      await Promise.all(running);
    },
  };
}
