import { describe, expect, it } from 'vitest';
import { chainEvents, genesisHash } from '../../src/engine/event-hash.ts';
import type { EventDraft } from '../../src/engine/types.ts';

// G7: `secventory verify` recomputes every stored hash. The engine, verify and the test checkers
// all call the same function, so a change to it (the algorithm, the encoding, the canonical
// fields) would pass every other test and still make every existing database fail verification.
// These hashes were computed outside Node (Python's hashlib over the documented canonical text:
// previous hash, a newline, the JSON array of the fields in order, then an extension's new expiry)
// and must never change.

const reserved: EventDraft = {
  seq: 2,
  type: 'reserved',
  reservationId: '0f8fad5b-d9cb-469f-a165-70867728950e',
  quantity: 1,
  delta: null,
  reason: null,
  code: null,
  requestId: 'req-1',
  idempotencyKey: 'key-"1\\',
  source: 'api',
  lateMs: null,
  expiresAtMs: null,
  total: 100,
  reserved: 1,
  purchased: 0,
  atMs: 1_764_000_000_000,
};
const expired: EventDraft = {
  seq: 3,
  type: 'expired',
  reservationId: '0f8fad5b-d9cb-469f-a165-70867728950e',
  quantity: 1,
  delta: null,
  reason: null,
  code: null,
  requestId: null,
  idempotencyKey: null,
  source: 'sweeper',
  lateMs: 250,
  expiresAtMs: null,
  total: 100,
  reserved: 0,
  purchased: 0,
  atMs: 1_764_000_600_250,
};

/** An extension: its new expiry joins the canonical content at the end (the field added later). */
const extended: EventDraft = {
  seq: 3,
  type: 'extended',
  reservationId: '0f8fad5b-d9cb-469f-a165-70867728950e',
  quantity: 1,
  delta: null,
  reason: null,
  code: null,
  requestId: 'req-2',
  idempotencyKey: null,
  source: 'api',
  lateMs: null,
  expiresAtMs: 1_764_000_700_000,
  total: 100,
  reserved: 1,
  purchased: 0,
  atMs: 1_764_000_100_000,
};

describe('the audit hash chain', () => {
  it('G7: hashes of a known chain are what databases written by earlier versions hold', () => {
    const [first, second] = chainEvents(genesisHash, 'HOT', [reserved, expired]);
    expect(first!.hash).toBe('1fd493f7f24a7bacf40b2a3f5f79645a03c18c018ac8028df1f24dbde33c776d');
    expect(second!.hash).toBe('33a9997b93fcb5fd2e9be5b90780e6b515d5224c3efc7d5bcb609427d43e17b3');
    expect(second).toMatchObject({ ...expired, sku: 'HOT' });
  });

  it('G7: an extended event hashes its new expiry as the last field, as databases written by earlier versions hold it', () => {
    // Python's hashlib over the documented canonical text, outside Node:
    // sha256(previous hash + '\n' + '["HOT",3,"extended","0f8fad5b-...",1,null,null,null,"req-2",null,"api",null,
    //   100,1,0,1764000100000,1764000700000]')
    const [first, second] = chainEvents(genesisHash, 'HOT', [reserved, extended]);
    expect(first!.hash).toBe('1fd493f7f24a7bacf40b2a3f5f79645a03c18c018ac8028df1f24dbde33c776d');
    expect(second!.hash).toBe('113b2377a055d266f26b0be616ee724e560dac15f6a6d4327bdd795cd4fd2ada');
  });
});
