import type { ApiClient } from '../lib/api-client.ts';

/** docs/API.md's Event, as GET /products/{sku}/events and /reservations/{id}/events return it. */
export interface AuditEvent {
  readonly seq: number;
  readonly sku: string;
  readonly type: string;
  readonly source?: string;
  readonly reservationId?: string;
  readonly quantity?: number;
  readonly code?: string;
  readonly requestId?: string;
  readonly idempotencyKey?: string;
  readonly lateMs?: number;
  readonly inventory: { total: number; reserved: number; purchased: number };
  readonly at: string;
}

const pageLimit = 1_000;
/** 100 pages of 1,000: far above any product of the proof; a cursor that never ends fails instead. */
const pagesMax = 100;

async function readAll(client: ApiClient, basePath: string): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  let after = 0;
  for (let page = 0; page < pagesMax; page++) {
    const body = await client.expect(200, 'GET', `${basePath}?after=${after}&limit=${pageLimit}`);
    events.push(...(body.events as AuditEvent[]));
    if (body.next === null) return events;
    after = body.next as number;
  }
  throw new Error(`${basePath} had more than ${pagesMax} pages`);
}

/** Every audit event of a product, through the REST API, page by page. */
export const productEvents = (client: ApiClient, sku: string) =>
  readAll(client, `/products/${encodeURIComponent(sku)}/events`);

/** Every audit event of one reservation, through the REST API. */
export const reservationEvents = (client: ApiClient, id: string) => readAll(client, `/reservations/${id}/events`);

/** One event as a short line for the report: the fields a reader checks, nothing else. */
export function eventLine(e: AuditEvent): string {
  const parts = [`seq ${e.seq}`, e.sku, e.type];
  if (e.code !== undefined) parts.push(`code=${e.code}`);
  if (e.quantity !== undefined) parts.push(`quantity=${e.quantity}`);
  if (e.reservationId !== undefined) parts.push(`reservation=${e.reservationId.slice(0, 8)}…`);
  if (e.source !== undefined) parts.push(`source=${e.source}`);
  if (e.lateMs !== undefined) parts.push(`lateMs=${e.lateMs}`);
  if (e.requestId !== undefined) parts.push(`requestId=${e.requestId}`);
  if (e.idempotencyKey !== undefined) parts.push(`key=${e.idempotencyKey}`);
  parts.push(`after: total=${e.inventory.total} reserved=${e.inventory.reserved} purchased=${e.inventory.purchased}`);
  return parts.join('  ');
}
