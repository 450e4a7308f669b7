import { decideBatch, type Base, type BatchDecision } from './decide-batch.ts';
import { assert } from './errors.ts';
import { fingerprintOf } from './fingerprint.ts';
import type { BatchWrite, BulkItem, Command, CommandResult, Outcome, RejectionCode } from './types.ts';

/** One item of POST /stock-adjustments/bulk. */
export interface BulkAdjustment {
  readonly sku: string;
  readonly delta: number;
  readonly reason: string;
}

type AdjustCommand = Extract<Command, { type: 'adjust' }>;

export interface BulkAdjustmentsDecision {
  /** One write per product (each holds one event: the adjustment, or the refusal). */
  readonly writes: readonly BatchWrite[];
  /** The call's answer: every item applied (`bulk`), or the call refused (`rejected`, with `items`). */
  readonly outcome: Outcome;
  /** Each item's command and its own result, in the order of the request (for the observer). */
  readonly commands: readonly AdjustCommand[];
  readonly results: readonly CommandResult[];
}

/** An item of an atomic call: no key of its own (the call's lives in the call's scope). */
export function adjustCommandOf(item: BulkAdjustment, requestId: string): AdjustCommand {
  return { type: 'adjust', delta: item.delta, reason: item.reason, idempotencyKey: null, requestId };
}

/**
 * Decides an atomic bulk adjustment over all its products at once. Pure. Every item is decided on
 * its own product first; if any is refused, the whole call is: each product records a refusal -
 * its own, or the call's code (that of the first refused item in the order of the request) - and
 * no total changes. All or nothing, as a cart.
 */
export function decideBulkAdjustments(
  bases: ReadonlyMap<string, Base>,
  items: readonly BulkAdjustment[],
  requestId: string,
  nowMs: number,
): BulkAdjustmentsDecision {
  const commands = items.map((item) => adjustCommandOf(item, requestId));
  const own = commands.map((command, i) => decideOne(bases, items[i]!.sku, command, nowMs));
  const refused = items.flatMap((item, i) => {
    const outcome = outcomeOf(own[i]!);
    return outcome.kind === 'rejected' ? [{ sku: item.sku, code: outcome.code, detail: outcome.detail }] : [];
  });
  const first = refused[0];
  if (first === undefined) {
    const applied: BulkItem[] = own.map((d) => {
      const outcome = outcomeOf(d);
      assert(outcome.kind === 'inventory', 'an applied adjustment answers its inventory');
      return { type: 'inventory', inventory: outcome.inventory };
    });
    return {
      writes: own.map(writeOf),
      outcome: { kind: 'bulk', items: applied },
      commands,
      results: own.map(resultOf),
    };
  }
  const code: RejectionCode = first.code;
  const detail = refused.map((r) => `${r.sku}: ${r.detail}`).join('; ');
  const all = own.map((d, i) =>
    outcomeOf(d).kind === 'rejected'
      ? d
      : decideOne(bases, items[i]!.sku, { ...commands[i]!, refusedAs: { code, detail } }, nowMs),
  );
  const outcome: Outcome = {
    kind: 'rejected',
    code,
    detail,
    items: refused.map((r) => ({ sku: r.sku, code: r.code })),
  };
  return { writes: all.map(writeOf), outcome, commands, results: all.map(resultOf) };
}

function decideOne(bases: ReadonlyMap<string, Base>, sku: string, command: AdjustCommand, nowMs: number) {
  const base = bases.get(sku);
  assert(base !== undefined, `the product ${sku} of a bulk adjustment is held`);
  // No reservation is named, so nothing is loaded and the decision is never stale.
  const decided = decideBatch(base, [{ command, fingerprint: fingerprintOf(command) }], [], nowMs, new Map());
  assert(decided.type === 'decided', 'an adjustment names no reservation, so it is always decided');
  return decided.decision;
}

function resultOf(d: BatchDecision): CommandResult {
  const result = d.results[0];
  assert(result !== undefined, 'one result for the one command');
  return result;
}

function outcomeOf(d: BatchDecision): Outcome {
  const result = resultOf(d);
  // A command without a key is never replayed nor refused as reused: it is decided.
  assert(result.type === 'done', 'an adjustment without a key is decided');
  return result.outcome;
}

function writeOf(d: BatchDecision): BatchWrite {
  assert(d.write !== null, 'an adjustment writes an event, applied or refused');
  return d.write;
}
