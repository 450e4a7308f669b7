import { Type, type TStringOptions } from 'typebox';
import { isStorableText } from '../engine/storable-text.ts';

// Every string a request carries (body fields, path parameters, query parameters, headers) is
// declared with Text(), so no text that PostgreSQL would store differently from what it was
// sent (an unpaired surrogate, written as U+FFFD) or not at all (U+0000) gets past validation:
// such a request is 400 validation_failed naming the field, and nothing is written.

/** The name of the Ajv format that Text() declares; `ajvFormats` defines it. */
export const textFormat = 'text';

/** What Text() promises, said once for /openapi.json. */
const textRule = 'well-formed Unicode without U+0000';

/**
 * A request string: `options` plus well-formed Unicode without U+0000. A string with a pattern is
 * documented by its pattern (every pattern here is narrower); one without says the rule. The
 * format is Text()'s own, so `options` cannot name one.
 */
export function Text(options: TStringOptions & { format?: never } = {}) {
  if (options.pattern !== undefined) return Type.String({ ...options, format: textFormat });
  const description = options.description === undefined ? textRule : `${options.description}; ${textRule}`;
  return Type.String({ ...options, description, format: textFormat });
}

/**
 * Formats for the Ajv of every server that validates with these schemas. An Ajv without them
 * refuses to compile a schema using Text() ("unknown format"), so a server cannot forget them.
 */
export const ajvFormats = { [textFormat]: { type: 'string', validate: isStorableText } } as const;
