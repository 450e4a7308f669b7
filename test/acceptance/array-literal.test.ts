import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrayLiteral } from '../../src/persistence/array-literal.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

/** What PostgreSQL reads from the literal, as it reads a batch's column. */
async function parsed(literal: string, type: 'text' | 'bigint' | 'uuid'): Promise<unknown[]> {
  const { rows } = await db.sql.query(`select $1::${type}[] as a`, [literal]);
  return rows[0].a;
}

describe('batch columns travel as array literals', () => {
  it('every string arrives as itself: quotes, backslashes, commas, braces, spaces, empty, the word NULL', async () => {
    const awkward = [
      '',
      'NULL',
      'null',
      'a"b',
      'c\\d',
      '\\"',
      '"',
      '\\',
      '{x,y}',
      ' lead and trail ',
      'a,b',
      'ключ',
      '{"outcome":{"kind":"noop"}}',
    ];
    expect(await parsed(arrayLiteral(awkward), 'text')).toEqual(awkward);
  });

  it('null is SQL NULL, and numbers keep their value up to epoch milliseconds', async () => {
    expect(await parsed(arrayLiteral([null, 'x', null]), 'text')).toEqual([null, 'x', null]);
    const numbers = [0, -1, 2_147_483_647, 1_764_000_000_000, Number.MAX_SAFE_INTEGER];
    const back = await parsed(arrayLiteral(numbers), 'bigint');
    expect(back.map(Number)).toEqual(numbers);
  });

  it('an empty column is an empty array, and uuids parse', async () => {
    expect(await parsed(arrayLiteral([]), 'text')).toEqual([]);
    const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
    expect(await parsed(arrayLiteral([id, null]), 'uuid')).toEqual([id, null]);
  });

  it('any printable or unicode string round-trips (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.string(),
            fc.string({ unit: 'grapheme' }).map((s) => s.replaceAll('\u0000', '')),
            fc.constant(null),
          ),
          { maxLength: 20 },
        ),
        async (values) => {
          expect(await parsed(arrayLiteral(values), 'text')).toEqual(values);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a number that cannot be stored is refused before it is sent', () => {
    expect(() => arrayLiteral([Number.NaN])).toThrow(RangeError);
    expect(() => arrayLiteral([Number.POSITIVE_INFINITY])).toThrow(RangeError);
  });
});
