import { describe, expect, it } from 'vitest';
import { nextStatus } from '../../src/engine/lifecycle.ts';
import type { ReservationStatus } from '../../src/engine/types.ts';

describe('reservation lifecycle (XState machine)', () => {
  it.each([
    ['PURCHASE', 'purchased'],
    ['CANCEL', 'cancelled'],
    ['EXPIRE', 'expired'],
  ] as const)('active --%s--> %s', (event, to) => {
    expect(nextStatus('active', { type: event })).toBe(to);
  });

  const finals: ReservationStatus[] = ['purchased', 'cancelled', 'expired'];
  for (const status of finals) {
    it(`${status} is final: no event leaves it`, () => {
      for (const type of ['PURCHASE', 'CANCEL', 'EXPIRE'] as const) expect(nextStatus(status, { type })).toBeNull();
    });
  }
});
