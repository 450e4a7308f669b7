import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { databaseViolations } from '../../scripts/lib/oracle.ts';

let t: TestApp;
beforeAll(async () => {
  // A tiny mailbox drained one command per commit, so that a flood overflows it for sure.
  t = await startTestApp({ env: { SECVENTORY_MAILBOX_LENGTH_MAX: '10', SECVENTORY_BATCH_SIZE_MAX: '1' } });
});
afterAll(async () => {
  await t?.close();
});

describe('overload', () => {
  it('a flood far past the mailbox bound: what was accepted is correct, the rest refused 503 overloaded with Retry-After and changed nothing', async () => {
    await t.http('POST', '/products', { body: { sku: 'FLOOD-1', name: 'x', stock: 1_000_000 } });
    // Every request on the wire at once: 100 connections with 30 pipelined requests each
    // (idempotent + non-blocking, or undici would send one POST per connection at a time).
    const flood = new Agent({ connections: 100, pipelining: 30 });
    const answers = await Promise.all(
      Array.from({ length: 3000 }, async (_, i) => {
        const res = await request(`${t.baseUrl}/products/FLOOD-1/reservations`, {
          method: 'POST',
          dispatcher: flood,
          idempotent: true,
          blocking: false,
          headers: { 'content-type': 'application/json', 'idempotency-key': `flood-${i}` },
          body: '{"quantity":1}',
        });
        return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as { code?: string } };
      }),
    );
    await flood.close();
    const accepted = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status === 503);
    console.info(`overload: ${accepted.length} accepted, ${refused.length} refused of 3000`);
    expect(accepted.length + refused.length).toBe(3000);
    expect(refused.length).toBeGreaterThan(0);
    expect(accepted.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.body.code).toBe('overloaded');
      expect(r.headers['retry-after']).toBe('1');
    }
    const inventory = (await t.http('GET', '/products/FLOOD-1/inventory')).body;
    expect(inventory.reserved).toBe(accepted.length);
    const { rows } = await t.db.sql.query(`select count(*)::int as n from reservations where sku = 'FLOOD-1'`);
    expect(rows[0].n).toBe(accepted.length);
    expect(await databaseViolations(t.db.sql)).toEqual([]);

    // A refused request was not executed: retrying its key now executes it, once.
    const retry = await t.http('POST', '/products/FLOOD-1/reservations', {
      key: `flood-${answers.indexOf(refused[0]!)}`,
      body: { quantity: 1 },
    });
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
  });
});
