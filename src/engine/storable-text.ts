// PostgreSQL stores text as UTF-8 and cannot hold U+0000. A JavaScript string can hold both an
// unpaired UTF-16 surrogate (which no UTF-8 can encode; PostgreSQL would store U+FFFD in its
// place) and U+0000 (which PostgreSQL refuses). A string with either would be stored as another
// text than the one the engine decided on and hashed, or not at all.

// With the `u` flag a lone surrogate is one code point of category Cs, while a well-formed pair
// is one code point of another category, so this one scan finds both kinds of unstorable text.
// eslint-disable-next-line no-control-regex -- U+0000 is one of the two things this scan is for.
const unstorable = /[\u0000\p{Cs}]/u;

/** True when PostgreSQL would store exactly this string: well-formed Unicode without U+0000. */
export function isStorableText(value: string): boolean {
  return !unstorable.test(value);
}
