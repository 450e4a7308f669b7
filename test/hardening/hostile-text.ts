import fc from 'fast-check';

// Strings for hardening tests: whatever a client can put in a JSON string, a path, a query or a
// header, including what PostgreSQL cannot store (U+0000, unpaired surrogates), and the byte
// encodings that carry them over HTTP.

const char = (codePoint: number) => String.fromCodePoint(codePoint);

/** The characters that broke storage, and their neighbours. */
export const unstorableChars = ['\u0000', '\ud800', '\udbff', '\udc00', '\udfff'] as const;
const edgeChars = ['\ufffd', '\ufeff', '\uffff', '\u2028', '\u0085', '\u007f', '"', '\\', '{', '}', ',', '💥', 'é'];

/**
 * One character of hostile text: full Unicode, with lone surrogates, NUL and other control
 * characters drawn far more often than their share of the code space.
 */
const hostileChar = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map(char) },
  { weight: 1, arbitrary: fc.integer({ min: 0x00, max: 0x1f }).map(char) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map(char) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0x10ffff }).map(char) },
  { weight: 2, arbitrary: fc.constantFrom(...unstorableChars, ...edgeChars) },
);

/** Text of any code units, short, or around the 200-character bound of names and reasons. */
export const hostileText = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: hostileChar, maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: hostileChar, minLength: 195, maxLength: 205 }) },
);

/** Any string: fast-check's own (its `binary` unit never draws a lone surrogate), hostile text, edge cases. */
export const hostileString = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  hostileText,
  fc.constantFrom(
    '',
    ' ',
    '..',
    '../..',
    '%00',
    '%2e%2e',
    '%ZZ',
    'é',
    '💥',
    'a'.repeat(300),
    '-1',
    '1e309',
    'NaN',
    'null',
    '__proto__',
    'constructor',
  ),
);

/**
 * The bytes of a string in generalized UTF-8 (WTF-8): a lone surrogate becomes the three bytes
 * UTF-8 would give its code point (ED A0 80 for U+D800), the closest bytes can come to it.
 */
export function wtf8(text: string): Buffer {
  const bytes: number[] = [];
  // A string's iterator yields well-formed pairs as one code point and lone surrogates alone.
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) bytes.push(c);
    else if (c < 0x800) bytes.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else bytes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Buffer.from(bytes);
}

/** A path segment or query value for any string; encodeURIComponent throws on lone surrogates. */
export function percentEncoded(text: string): string {
  let out = '';
  for (const byte of wtf8(text)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._~-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** True when PostgreSQL stores the string as it is (the oracle, independent of the service's own check). */
export function storesAsIs(text: string): boolean {
  return !text.includes('\u0000') && Buffer.from(text, 'utf8').toString('utf8') === text;
}
