import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvariantViolation } from '../../src/engine/errors.ts';
import { chainEvents, genesisHash } from '../../src/engine/event-hash.ts';
import { isStorableText } from '../../src/engine/storable-text.ts';
import type { EventDraft } from '../../src/engine/types.ts';
import { hostileText, storesAsIs } from '../hardening/hostile-text.ts';

// G7: the engine hashes an event before PostgreSQL stores it, and verify rehashes what was stored.
// A string PostgreSQL stores differently (a lone surrogate becomes U+FFFD) or refuses (U+0000)
// must never reach the hash: the API refuses it, and chainEvents asserts it as a last line.

const adjusted: EventDraft = {
  seq: 2,
  type: 'stock_adjusted',
  reservationId: null,
  quantity: null,
  delta: 5,
  reason: 'restock',
  code: null,
  requestId: 'req-1',
  idempotencyKey: 'key-1',
  source: 'api',
  lateMs: null,
  expiresAtMs: null,
  total: 15,
  reserved: 0,
  purchased: 0,
  atMs: 1_764_000_000_000,
};

describe('text PostgreSQL stores as it is', () => {
  it('isStorableText is true exactly when the string survives a UTF-8 round trip and holds no U+0000', () => {
    fc.assert(
      fc.property(hostileText, (text) => isStorableText(text) === storesAsIs(text)),
      { numRuns: 5_000 },
    );
  });

  it('well-formed pairs are storable; a lone surrogate of either half, or U+0000, is not', () => {
    expect(isStorableText('💥 \ud83d\ude00 \u0001 \ufffd')).toBe(true);
    for (const text of ['\ud800', 'a\udbff', '\udc00b', '\udfff\ud800', 'x\u0000y'])
      expect(isStorableText(text)).toBe(false);
  });
});

describe('chainEvents', () => {
  it.each([
    ['reason', { reason: 'bad\ud800' }],
    ['reason', { reason: 'nul\u0000' }],
    ['requestId', { requestId: '\udc00' }],
    ['idempotencyKey', { idempotencyKey: 'k\u0000' }],
    ['reservationId', { reservationId: '\ud83d' }],
  ] as const)('G7: refuses to hash an event whose %s PostgreSQL would not store as it is', (field, change) => {
    const draft = { ...adjusted, ...change };
    expect(() => chainEvents(genesisHash, 'SKU-1', [draft])).toThrow(InvariantViolation);
    expect(() => chainEvents(genesisHash, 'SKU-1', [draft])).toThrow(`event ${field}`);
  });

  it('G7: refuses to hash an event of a sku PostgreSQL would not store as it is', () => {
    expect(() => chainEvents(genesisHash, 'SKU\u0000', [adjusted])).toThrow(InvariantViolation);
  });

  it('hashes events whose strings hold characters outside the BMP and control characters', () => {
    const [event] = chainEvents(genesisHash, 'SKU-1', [{ ...adjusted, reason: '𝄞 \u0007 \ud83d\ude00' }]);
    expect(event!.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});
