import { describe, expect, it } from 'vitest';
import { newReservationId } from '../../src/engine/reservation-id.ts';

describe('reservation ids', () => {
  it('are UUIDs of version 7 (time-ordered), lower case', () => {
    expect(newReservationId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('sort in the order they were made, also within one millisecond, so rows append to the primary key', () => {
    const ids = Array.from({ length: 10_000 }, newReservationId);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
