import { hash } from 'node:crypto';
import type { Command } from './types.ts';

/**
 * What a request asked for, as compared under one Idempotency-Key: the operation and its payload.
 * The same key with another fingerprint is refused (idempotency_key_reused).
 */
export function fingerprintOf(command: Command): string {
  switch (command.type) {
    case 'reserve':
      return `reserve:${command.quantity}:${command.ttlSeconds}`;
    case 'adjust':
      return `adjust:${command.delta}:${JSON.stringify(command.reason)}`;
    case 'purchase':
      // No quantity is the whole line: the same purchase as naming the full quantity.
      return command.quantity === undefined
        ? `purchase:${command.reservationId}`
        : `purchase:${command.reservationId}:${command.quantity}`;
    case 'cancel':
      return `cancel:${command.reservationId}`;
    case 'extend':
      return `extend:${command.reservationId}:${command.ttlSeconds}`;
    case 'expire':
      return `expire:${command.reservationId}`;
    case 'refuse':
      return `refuse:${command.reservationId}:${command.code}`;
    default: {
      const unreachable: never = command;
      return unreachable;
    }
  }
}

/**
 * The fingerprint of a create (POST /products). The key is scoped to the body's sku, so the sku
 * is not part of it; the `create:` prefix keeps it apart from every command's fingerprint, so a
 * key spent on a create and sent again with a reserve is idempotency_key_reused.
 */
export function createFingerprintOf(name: string, stock: number): string {
  return `create:${stock}:${JSON.stringify(name)}`;
}

export function idempotencyKeyOf(command: Command): string | null {
  return command.type === 'expire' || command.type === 'refuse' ? null : command.idempotencyKey;
}

/** The existing reservation a command acts on: none for those that create or refuse one. */
export function reservationIdOf(command: Command): string | null {
  return command.type === 'reserve' || command.type === 'adjust' || command.type === 'refuse'
    ? null
    : command.reservationId;
}

/**
 * The fingerprint of a bulk call: its route and what its body asked for, as sent. A digest: a
 * call of a thousand items is compared under its key, not kept twice.
 */
export function bulkFingerprintOf(scope: string, asked: unknown): string {
  return `bulk:${scope}:${hash('sha256', JSON.stringify(asked), 'hex')}`;
}
