import { Type, type Static, type TSchema } from 'typebox';
import type { EventType } from '../engine/types.ts';
import * as limits from '../engine/limits.ts';
import type { RejectionCode } from '../engine/types.ts';
import { errorCodes, type ErrorCode } from './errors.ts';
import { Text } from './text.ts';

// Route schemas. They validate every request before the engine sees it (coercion is off, so
// "1" is not 1), and they are the source of /openapi.json. Every object refuses unknown fields.
// Every string a request carries is a Text(): well-formed Unicode without U+0000, so it is
// stored exactly as it was sent. Response strings stay plain: they were Text() on the way in.
//
// The bodies a client sends or reads are named (`$id`): registered once with the server
// (`namedSchemas`), referred to with ref(), and components of /openapi.json, so a client
// generated from it has a type per name.

const strict = { additionalProperties: false } as const;

/** A named schema where a route uses it: a `$ref` by name, typed as the schema it names. */
export function ref<T extends TSchema>(schema: T & { $id?: string }) {
  if (schema.$id === undefined) throw new Error('ref() takes a schema with an $id');
  return Type.Unsafe<Static<T>>({ $ref: schema.$id });
}

/**
 * The largest cursor a client can pass back exactly: JSON numbers are doubles in most clients,
 * so a larger integer would arrive rounded. Positions and seqs stay far below it.
 */
export const cursorMax = Number.MAX_SAFE_INTEGER;

export const Sku = Text({
  pattern: limits.skuPattern,
  minLength: 1,
  maxLength: limits.skuLengthMax,
  description: 'SKU: 1-64 of [A-Za-z0-9._:-]',
});
export const Uuid = Text({
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
  minLength: 36,
  maxLength: 36,
  description: 'reservation id (UUID, either case)',
});
const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339, UTC, with milliseconds' });
const ReservationId = Type.String({
  format: 'uuid',
  description: 'server-generated, time-ordered (UUID version 7), lower case',
});
const Count = Type.Integer({ minimum: 0 });

export const SkuParams = Type.Object({ sku: Sku }, strict);
export const ReservationParams = Type.Object({ id: Uuid }, strict);

/** For the routes that take no query parameters: any is 400 validation_failed, as on the others. */
export const NoQuery = Type.Object({}, strict);

const IdempotencyKey = Text({
  pattern: limits.idempotencyKeyPattern.source,
  minLength: 1,
  maxLength: limits.idempotencyKeyLengthMax,
  description:
    'scopes a retry to the first request: 1-255 printable ASCII characters; ' +
    'missing where required or malformed: 400 idempotency_key_required',
});
// The header schemas are checked before the handler runs; src/api/errors.ts answers their
// refusals with idempotency_key_required. Other headers are allowed: no additionalProperties.
export const RequiredIdempotencyKey = Type.Object({ 'idempotency-key': IdempotencyKey });
export const OptionalIdempotencyKey = Type.Object({ 'idempotency-key': Type.Optional(IdempotencyKey) });

export const NewProduct = Type.Object(
  {
    sku: Sku,
    name: Text({ minLength: 1, maxLength: limits.nameLengthMax }),
    stock: Type.Integer({ minimum: 0, maximum: limits.stockMax }),
  },
  { ...strict, $id: 'NewProduct' },
);

export const ReservationRequest = Type.Object(
  {
    quantity: Type.Integer({ minimum: 1, maximum: limits.quantityMax }),
    ttlSeconds: Type.Optional(
      Type.Integer({
        minimum: limits.ttlSecondsMin,
        maximum: limits.ttlSecondsMax,
        default: limits.ttlSecondsDefault,
      }),
    ),
  },
  { ...strict, $id: 'ReservationRequest' },
);

const Delta = Type.Integer({
  minimum: -limits.stockMax,
  maximum: limits.stockMax,
  not: { const: 0 },
  description: 'non-zero',
});
const Reason = Text({ minLength: 1, maxLength: limits.reasonLengthMax });

export const StockAdjustment = Type.Object({ delta: Delta, reason: Reason }, { ...strict, $id: 'StockAdjustment' });

export const Inventory = Type.Object(
  {
    sku: Type.String(),
    total: Count,
    reserved: Count,
    purchased: Count,
    available: Type.Integer({ minimum: 0, description: 'total - reserved - purchased' }),
    activeReservations: Count,
    version: Type.Integer({
      minimum: 1,
      description: "the number of the product's audit events: the seq of its newest",
    }),
  },
  { ...strict, $id: 'Inventory' },
);

export const Product = Type.Object(
  {
    sku: Type.String(),
    name: Type.String(),
    createdAt: Timestamp,
    inventory: ref(Inventory),
  },
  { ...strict, $id: 'Product' },
);

const ReservationLine = Type.Object(
  {
    sku: Type.String(),
    quantity: Type.Integer({ minimum: 1 }),
    purchasedQuantity: Type.Optional(
      Type.Integer({ minimum: 0, description: 'once purchased: how much of the line was bought' }),
    ),
  },
  strict,
);

/** A reservation of one line also has `sku` and `quantity`; one of several has `lines` only. */
export const Reservation = Type.Object(
  {
    id: ReservationId,
    sku: Type.Optional(Type.String({ description: 'for a reservation of one line' })),
    quantity: Type.Optional(Type.Integer({ minimum: 1, description: 'for a reservation of one line' })),
    lines: Type.Array(ReservationLine, { description: 'in the order of the request' }),
    status: Type.Unsafe<'active' | 'purchased' | 'cancelled' | 'expired'>({
      type: 'string',
      enum: ['active', 'purchased', 'cancelled', 'expired'],
    }),
    createdAt: Timestamp,
    expiresAt: Timestamp,
    purchasedAt: Type.Optional(Timestamp),
    cancelledAt: Type.Optional(Timestamp),
    expiredAt: Type.Optional(Timestamp),
  },
  { ...strict, $id: 'Reservation', description: 'one of purchasedAt, cancelledAt, expiredAt once no longer active' },
);

const CartLine = Type.Object(
  {
    sku: Sku,
    quantity: Type.Integer({ minimum: 1, maximum: limits.quantityMax }),
  },
  strict,
);

export const CartRequest = Type.Object(
  {
    lines: Type.Array(CartLine, {
      minItems: 1,
      maxItems: limits.cartLinesMax,
      description: `1..${limits.cartLinesMax} lines, each SKU at most once`,
    }),
    ttlSeconds: Type.Optional(
      Type.Integer({
        minimum: limits.ttlSecondsMin,
        maximum: limits.ttlSecondsMax,
        description: `default ${limits.ttlSecondsDefault}`,
      }),
    ),
  },
  { ...strict, $id: 'CartRequest' },
);

export const PurchaseRequest = Type.Object(
  {
    lines: Type.Array(CartLine, {
      minItems: 1,
      maxItems: limits.cartLinesMax,
      description: 'what to buy of each line (each SKU at most once); a line left out is bought none of',
    }),
  },
  { ...strict, $id: 'PurchaseRequest' },
);

export const ExtendRequest = Type.Object(
  {
    ttlSeconds: Type.Integer({ minimum: limits.ttlSecondsMin, maximum: limits.ttlSecondsMax }),
  },
  { ...strict, $id: 'ExtendRequest' },
);

/** The `code` of a rejected event: every RejectionCode, checked at compile time. */
const rejectionCodes = [
  'product_exists',
  'insufficient_stock',
  'stock_limit_exceeded',
  'reservation_expired',
  'reservation_cancelled',
  'reservation_purchased',
  'reservation_lifetime_exceeded',
  'quantity_exceeds_reservation',
] as const satisfies readonly RejectionCode[];
type Unlisted = Exclude<RejectionCode, (typeof rejectionCodes)[number]>;
const everyRejectionListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyRejectionListed;

/** An item's `code`: a code of the Problem table (docs/API.md, Error codes). */
const ItemCode = Type.Unsafe<ErrorCode>({
  type: 'string',
  enum: errorCodes,
  description: "when the item's status is not 2xx: the code its own Problem would carry",
});

/**
 * An item of POST /products/bulk. Only its being an object is checked with the body: each item is
 * then checked as a NewProduct on its own, so that an invalid item is that item's 400, not the call's.
 */
const BulkProductItem = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  description: "a NewProduct ({ sku, name, stock }), checked on its own: an invalid one is that item's 400",
});

export const BulkProductsRequest = Type.Object(
  {
    products: Type.Array(BulkProductItem, {
      minItems: 1,
      maxItems: limits.bulkItemsMax,
      description: `1..${limits.bulkItemsMax} products; a SKU named twice is the second item's 400`,
    }),
  },
  { ...strict, $id: 'BulkProductsRequest' },
);

export const BulkProductResult = Type.Object(
  {
    sku: Type.Union([Type.String(), Type.Null()], {
      description: "the item's sku; null when it is not a string that can be stored",
    }),
    status: Type.Integer({
      enum: [200, 201, 400, 409],
      description:
        'what POST /products answers for this item: 201 created, 200 the same again, 409 product_exists; 400 invalid',
    }),
    code: Type.Optional(ItemCode),
    field: Type.Optional(Type.String({ description: 'on 400: the field that is missing, unknown or invalid' })),
    product: Type.Optional(ref(Product)),
  },
  { ...strict, $id: 'BulkProductResult' },
);

export const BulkProductResults = Type.Object(
  {
    results: Type.Array(ref(BulkProductResult), {
      maxItems: limits.bulkItemsMax,
      description: 'one per item, in the order of the request',
    }),
  },
  { ...strict, $id: 'BulkProductResults' },
);

export const BulkAdjustmentsRequest = Type.Object(
  {
    adjustments: Type.Array(Type.Object({ sku: Sku, delta: Delta, reason: Reason }, strict), {
      minItems: 1,
      maxItems: limits.bulkItemsMax,
      description: `1..${limits.bulkItemsMax} adjustments, each SKU at most once`,
    }),
    atomic: Type.Optional(
      Type.Boolean({ description: 'true: every item applies or none does (default false: each on its own)' }),
    ),
  },
  { ...strict, $id: 'BulkAdjustmentsRequest' },
);

export const BulkAdjustmentResult = Type.Object(
  {
    sku: Type.String(),
    status: Type.Integer({
      enum: [200, 404, 409, 422, 500, 503],
      description: 'what POST /products/{sku}/stock-adjustments answers for this item',
    }),
    code: Type.Optional(ItemCode),
    inventory: Type.Optional(ref(Inventory)),
  },
  { ...strict, $id: 'BulkAdjustmentResult' },
);

export const BulkAdjustmentResults = Type.Object(
  {
    results: Type.Array(ref(BulkAdjustmentResult), {
      maxItems: limits.bulkItemsMax,
      description: 'one per item, in the order of the request',
    }),
  },
  { ...strict, $id: 'BulkAdjustmentResults' },
);

export const Problem = Type.Object(
  {
    type: Type.String({ format: 'uri', description: 'https://secventory.dev/problems/ and the code with dashes' }),
    title: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    code: Type.Unsafe<ErrorCode>({
      type: 'string',
      enum: errorCodes,
      description: 'stable: what a client branches on (docs/API.md, Error codes)',
    }),
    detail: Type.String(),
    instance: Type.Optional(Type.String({ description: "the request's path" })),
    lines: Type.Optional(
      Type.Array(
        Type.Object(
          {
            sku: Type.String(),
            requested: Type.Integer({ minimum: 1 }),
            available: Type.Integer({ minimum: 0 }),
          },
          strict,
        ),
        { description: 'insufficient_stock on a cart: every short line, with what its product had' },
      ),
    ),
    unknownSkus: Type.Optional(
      Type.Array(Type.String(), {
        description: 'product_not_found on a cart or an atomic bulk adjustment: every unknown SKU',
      }),
    ),
    items: Type.Optional(
      Type.Array(
        Type.Object(
          { sku: Type.String(), code: Type.Unsafe<RejectionCode>({ type: 'string', enum: rejectionCodes }) },
          strict,
        ),
        { description: 'an atomic bulk adjustment refused: every item refused on its own product, with its code' },
      ),
    ),
  },
  { ...strict, $id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' },
);

export const EventPageQuery = Type.Object(
  {
    after: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: cursorMax,
        description: 'the `next` of the previous page; 0 or absent: from the first event',
      }),
    ),
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: limits.eventPageLimitMax,
        default: limits.eventPageLimitDefault,
      }),
    ),
  },
  strict,
);

/** docs/API.md's Event, plus where it came from (`source`, `lateMs`) and its place in the whole log. */
export const Event = Type.Object(
  {
    position: Type.Integer({ minimum: 1, description: 'place in the whole log; the cursor of GET /events' }),
    seq: Type.Integer({
      minimum: 1,
      description: "the product's sequence number: gap-free, equal to its version right after this event",
    }),
    sku: Type.String(),
    type: Type.Unsafe<EventType>({
      type: 'string',
      enum: [
        'product_created',
        'stock_adjusted',
        'reserved',
        'purchased',
        'cancelled',
        'expired',
        'released',
        'extended',
        'rejected',
      ],
    }),
    reservationId: Type.Optional(ReservationId),
    expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'extended: the new expiry' })),
    quantity: Type.Optional(
      Type.Integer({ description: "the reservation's quantity; the requested one on a rejected reservation" }),
    ),
    delta: Type.Optional(Type.Integer({ description: 'stock_adjusted (and its rejection): the change of total' })),
    reason: Type.Optional(Type.String()),
    code: Type.Optional(Type.Unsafe<RejectionCode>({ type: 'string', enum: rejectionCodes, description: 'why' })),
    requestId: Type.Optional(Type.String({ description: "the request's x-request-id" })),
    idempotencyKey: Type.Optional(Type.String()),
    source: Type.Unsafe<'api' | 'sweeper'>({
      type: 'string',
      enum: ['api', 'sweeper'],
      description: "'sweeper' for an expiry the sweeper found",
    }),
    lateMs: Type.Optional(
      Type.Integer({ minimum: 0, description: 'expired: how long after expiresAt the expiry was processed' }),
    ),
    inventory: Type.Object(
      { total: Count, reserved: Count, purchased: Count },
      { ...strict, description: "the product's counters right after the event" },
    ),
    at: Timestamp,
  },
  { ...strict, $id: 'Event' },
);

export const EventPage = Type.Object(
  {
    events: Type.Array(ref(Event), { maxItems: limits.eventPageLimitMax }),
    next: Type.Union([Type.Integer({ minimum: 1, maximum: cursorMax }), Type.Null()], {
      description: 'pass as `after` for the following page; null when nothing more follows',
    }),
  },
  { ...strict, $id: 'EventPage' },
);

export const Health = Type.Object(
  {
    status: Type.Unsafe<'live' | 'ready'>({ type: 'string', enum: ['live', 'ready'] }),
  },
  { ...strict, $id: 'Health' },
);

/** Every named schema above; src/api/server.ts registers them before the routes. */
export const namedSchemas: readonly TSchema[] = [
  NewProduct,
  ReservationRequest,
  StockAdjustment,
  Inventory,
  Product,
  Reservation,
  Problem,
  Event,
  EventPage,
  Health,
  CartRequest,
  PurchaseRequest,
  ExtendRequest,
  BulkProductsRequest,
  BulkProductResult,
  BulkProductResults,
  BulkAdjustmentsRequest,
  BulkAdjustmentResult,
  BulkAdjustmentResults,
];
