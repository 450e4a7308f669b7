import { Type } from 'typebox';
import type { EventType } from '../engine/types.ts';
import * as limits from '../engine/limits.ts';
import { Text } from './text.ts';

// Route schemas. They validate every request before the engine sees it (coercion is off, so
// "1" is not 1), and they are the source of /openapi.json. Every object refuses unknown fields.
// Every string a request carries is a Text(): well-formed Unicode without U+0000, so it is
// stored exactly as it was sent. Response strings stay plain: they were Text() on the way in.

const strict = { additionalProperties: false } as const;

export const Sku = Text({ pattern: limits.skuPattern, minLength: 1, maxLength: limits.skuLengthMax, description: 'SKU: 1-64 of [A-Za-z0-9._:-]' });
export const Uuid = Text({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
  minLength: 36,
  maxLength: 36,
  description: 'reservation id (UUID)',
});
const Timestamp = Type.String({ description: 'RFC 3339, UTC' });
const Count = Type.Integer({ minimum: 0 });

export const SkuParams = Type.Object({ sku: Sku }, strict);
export const ReservationParams = Type.Object({ id: Uuid }, strict);

export const CreateProductBody = Type.Object({
  sku: Sku,
  name: Text({ minLength: 1, maxLength: limits.nameLengthMax }),
  stock: Type.Integer({ minimum: 0, maximum: limits.stockMax }),
}, strict);

export const ReserveBody = Type.Object({
  quantity: Type.Integer({ minimum: 1, maximum: limits.quantityMax }),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: limits.ttlSecondsMin, maximum: limits.ttlSecondsMax, description: 'default 600' })),
}, strict);

export const AdjustBody = Type.Object({
  delta: Type.Integer({ minimum: -limits.stockMax, maximum: limits.stockMax, not: { const: 0 }, description: 'non-zero' }),
  reason: Text({ minLength: 1, maxLength: limits.reasonLengthMax }),
}, strict);

export const Inventory = Type.Object({
  sku: Type.String(),
  total: Count,
  reserved: Count,
  purchased: Count,
  available: Count,
  activeReservations: Count,
  version: Type.Integer({ minimum: 1 }),
}, strict);

export const Product = Type.Object({
  sku: Type.String(),
  name: Type.String(),
  createdAt: Timestamp,
  inventory: Inventory,
}, strict);

const ReservationLine = Type.Object({
  sku: Type.String(),
  quantity: Type.Integer(),
  purchasedQuantity: Type.Optional(Type.Integer({ minimum: 0, description: 'once purchased: how much of the line was bought' })),
}, strict);

/** A reservation of one line also has `sku` and `quantity`; one of several has `lines` only. */
export const Reservation = Type.Object({
  id: Type.String(),
  sku: Type.Optional(Type.String()),
  quantity: Type.Optional(Type.Integer()),
  lines: Type.Array(ReservationLine, { description: 'in the order of the request' }),
  status: Type.Unsafe<'active' | 'purchased' | 'cancelled' | 'expired'>({ type: 'string', enum: ['active', 'purchased', 'cancelled', 'expired'] }),
  createdAt: Timestamp,
  expiresAt: Timestamp,
  purchasedAt: Type.Optional(Timestamp),
  cancelledAt: Type.Optional(Timestamp),
  expiredAt: Type.Optional(Timestamp),
}, strict);

const CartLine = Type.Object({
  sku: Sku,
  quantity: Type.Integer({ minimum: 1, maximum: limits.quantityMax }),
}, strict);

export const CartBody = Type.Object({
  lines: Type.Array(CartLine, { minItems: 1, maxItems: limits.cartLinesMax, description: `1..${limits.cartLinesMax} lines, each SKU at most once` }),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: limits.ttlSecondsMin, maximum: limits.ttlSecondsMax, description: 'default 600' })),
}, strict);

export const ExtendBody = Type.Object({
  ttlSeconds: Type.Integer({ minimum: limits.ttlSecondsMin, maximum: limits.ttlSecondsMax }),
}, strict);

export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.String(),
  detail: Type.String(),
  instance: Type.Optional(Type.String()),
}, { additionalProperties: true, description: 'RFC 9457 problem details' });

export const IdempotencyHeaders = Type.Object({
  // The handler checks the key (idempotency_key_required when malformed); HTTP delivers header
  // bytes as Latin-1, so Text() refuses nothing here that the handler would accept.
  'idempotency-key': Type.Optional(Text({ description: '1-255 printable ASCII characters' })),
});

export const EventPageQuery = Type.Object({
  after: Type.Optional(Text({ pattern: '^[0-9]{1,18}$', description: 'cursor: the `next` of the previous page' })),
  limit: Type.Optional(Text({ pattern: '^[0-9]{1,4}$', description: `1..${limits.eventPageLimitMax}, default ${limits.eventPageLimitDefault}` })),
}, strict);

/** docs/API.md's Event, plus where it came from (`source`, `lateMs`) and its place in the whole log. */
export const Event = Type.Object({
  position: Type.Integer({ minimum: 1, description: 'place in the whole log; the cursor of GET /events' }),
  seq: Type.Integer({ minimum: 1, description: "the product's sequence number: gap-free, equal to its version right after this event" }),
  sku: Type.String(),
  type: Type.Unsafe<EventType>({
    type: 'string',
    enum: ['product_created', 'stock_adjusted', 'reserved', 'purchased', 'cancelled', 'expired', 'released', 'extended', 'rejected'],
  }),
  reservationId: Type.Optional(Type.String()),
  quantity: Type.Optional(Type.Integer({ description: "the reservation's quantity; the requested one on a rejected reservation" })),
  delta: Type.Optional(Type.Integer({ description: 'stock_adjusted (and its rejection): the change of total' })),
  reason: Type.Optional(Type.String()),
  code: Type.Optional(Type.String({ description: 'rejected: why, e.g. insufficient_stock' })),
  requestId: Type.Optional(Type.String()),
  idempotencyKey: Type.Optional(Type.String()),
  source: Type.Unsafe<'api' | 'sweeper'>({ type: 'string', enum: ['api', 'sweeper'], description: "'sweeper' for an expiry the sweeper found" }),
  lateMs: Type.Optional(Type.Integer({ minimum: 0, description: 'expired: how long after expiresAt the expiry was processed' })),
  inventory: Type.Object({ total: Count, reserved: Count, purchased: Count }, { ...strict, description: "the product's counters right after the event" }),
  at: Timestamp,
}, strict);

export const EventPage = Type.Object({
  events: Type.Array(Event),
  next: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'pass as `after` for the following page; null when nothing more follows' }),
}, strict);

/** Problem responses every mutating route may give. */
export const problemResponses = {
  400: Problem,
  404: Problem,
  409: Problem,
  413: Problem,
  415: Problem,
  422: Problem,
  500: Problem,
  503: Problem,
} as const;
