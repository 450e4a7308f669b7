import type { FastifyReply } from 'fastify';
import type { CommandResult, FailureCode } from '../engine/types.ts';
import { bulkResultOf } from './bulk-results.ts';
import { sendProblem } from './errors.ts';

// What a client reads for a failure. The engine's reason (which may name SQL or hosts) goes to
// the log instead.
const failureDetail: Record<FailureCode, string> = {
  storage_unavailable:
    'the database did not confirm the change; it may or may not have happened - retry with the same Idempotency-Key',
  overloaded: 'too many commands are waiting for this product; nothing was done',
  product_not_found: 'no product with this SKU',
  reservation_not_found: 'no reservation with this id',
  idempotency_key_reused: 'this Idempotency-Key was used with a different request on this product',
  validation_failed: 'the request cannot succeed as asked',
  internal_error: 'the server failed to process this command; nothing was acknowledged',
};

/** Renders an engine result: the outcome's status and body, or a problem. */
export function sendResult(reply: FastifyReply, result: CommandResult): FastifyReply {
  if (result.type === 'failed') {
    const detail =
      result.code === 'product_not_found' ||
      result.code === 'reservation_not_found' ||
      result.code === 'idempotency_key_reused' ||
      result.code === 'validation_failed'
        ? result.reason
        : failureDetail[result.code];
    return sendProblem(
      reply,
      result.code,
      detail,
      result.unknownSkus === undefined ? {} : { unknownSkus: result.unknownSkus },
    );
  }
  if (result.replayed) reply.header('idempotent-replayed', 'true');
  const outcome = result.outcome;
  switch (outcome.kind) {
    case 'reservation':
      return reply.code(outcome.created ? 201 : 200).send(outcome.reservation);
    case 'inventory':
      return reply.code(200).send(outcome.inventory);
    case 'product':
      return reply.code(outcome.created ? 201 : 200).send(outcome.product);
    case 'rejected':
      return sendProblem(reply, outcome.code, outcome.detail, {
        ...(outcome.lines === undefined ? {} : { lines: outcome.lines }),
        ...(outcome.items === undefined ? {} : { items: outcome.items }),
      });
    case 'bulk':
      return reply.code(200).send({ results: outcome.items.map(bulkResultOf) });
    // Neither is an answer: an expiry that did nothing, a bulk call's key while its items run.
    case 'noop':
    case 'pending':
      return sendProblem(reply, 'internal_error', failureDetail.internal_error);
    default: {
      const unreachable: never = outcome;
      return unreachable;
    }
  }
}
