import type { Static } from 'typebox';
import type { LoggedEvent } from '../engine/read-ports.ts';
import { isoOf } from '../engine/time.ts';
import type { Event } from './schemas.ts';

export type EventJson = Static<typeof Event>;

/**
 * docs/API.md's Event, as every route that reads the log answers it (the pages of the audit log
 * and the event stream): absent fields are left out, never sent as null.
 */
export function eventJson(e: LoggedEvent): EventJson {
  const json: EventJson = {
    position: e.position,
    seq: e.seq,
    sku: e.sku,
    type: e.type,
    source: e.source,
    inventory: { total: e.total, reserved: e.reserved, purchased: e.purchased },
    at: isoOf(e.atMs),
  };
  if (e.reservationId !== null) json.reservationId = e.reservationId;
  if (e.expiresAtMs !== null) json.expiresAt = isoOf(e.expiresAtMs);
  if (e.quantity !== null) json.quantity = e.quantity;
  if (e.delta !== null) json.delta = e.delta;
  if (e.reason !== null) json.reason = e.reason;
  if (e.code !== null) json.code = e.code;
  if (e.requestId !== null) json.requestId = e.requestId;
  if (e.idempotencyKey !== null) json.idempotencyKey = e.idempotencyKey;
  if (e.lateMs !== null) json.lateMs = e.lateMs;
  return json;
}
