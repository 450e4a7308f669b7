import { isFinal } from '../lib/api-client.ts';
import { startLoad, type OperationLog } from '../lib/request-accounting.ts';

const oneForTenMinutes = { quantity: 1, ttlSeconds: 600 } as const;

export interface PurchaseLoad {
  /** Purchases that got a final answer since the load started. */
  purchasesAnswered(): number;
  /** Stops sending; resolves when every worker's last request has been answered or failed. */
  stop(): Promise<void>;
}

/**
 * Workers that purchase the given reservations back to back, each purchase with its own key; when
 * none is left, they reserve new ones (1 unit, 10 minutes) and purchase those.
 */
export function startPurchaseLoad(
  log: OperationLog,
  toPurchase: { id: string; sku: string }[],
  skus: readonly string[],
  workers: number,
): PurchaseLoad {
  const purchasesBefore = answeredPurchases(log);
  const load = startLoad(log, {
    workers,
    next: (w, i) => {
      const next = toPurchase.shift();
      return next === undefined
        ? { kind: 'reserve', sku: skus[(w + i) % skus.length]!, key: `c4-reserve-${w}-${i}`, ...oneForTenMinutes }
        : { kind: 'purchase', sku: next.sku, key: `buy-${next.id}`, reservationId: next.id };
    },
    // Queued rather than purchased at once, so that every worker keeps purchasing.
    then: (reserved) => {
      toPurchase.push(reserved);
      return null;
    },
  });
  return {
    purchasesAnswered: () => answeredPurchases(log) - purchasesBefore,
    stop: () => load.stop(),
  };
}

function answeredPurchases(log: OperationLog): number {
  return log.attempted.filter((e) => e.op.kind === 'purchase' && e.answers.some(isFinal)).length;
}
