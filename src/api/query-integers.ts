import type { FastifyInstance } from 'fastify';

// Query parameters arrive as text, and the validator coerces nothing (docs/API.md: "1" is not 1
// in a body). A query parameter declared as an integer is read here instead: a run of decimal
// digits becomes its number, and the schema then checks its range. Anything else (a sign, a
// fraction, an exponent, hex, spaces, an empty value, a repeated parameter) stays as it came
// and is refused by the schema with 400 validation_failed. Ajv's own coercion is not used
// because it takes "0x10", " 12" and "1e3" for numbers.

const decimalDigits = /^[0-9]+$/;

interface QuerySchema {
  readonly properties?: Record<string, { readonly type?: unknown }>;
}

/** The integer parameters of each route's query schema, computed once per schema. */
const integerNamesBySchema = new WeakMap<object, readonly string[]>();

function integerNamesOf(schema: QuerySchema): readonly string[] {
  let names = integerNamesBySchema.get(schema);
  if (names === undefined) {
    names = Object.entries(schema.properties ?? {})
      .filter(([, property]) => property.type === 'integer')
      .map(([name]) => name);
    integerNamesBySchema.set(schema, names);
  }
  return names;
}

/** Reads the decimal query parameters of every route declared after it as integers. */
export function installQueryIntegers(app: FastifyInstance): void {
  app.addHook('preValidation', (request, _reply, done) => {
    const schema = request.routeOptions.schema?.querystring as QuerySchema | undefined;
    if (schema === undefined || schema === null || typeof schema !== 'object') return done();
    const query = request.query as Record<string, unknown>;
    for (const name of integerNamesOf(schema)) {
      const value = query[name];
      if (typeof value === 'string' && decimalDigits.test(value)) query[name] = Number(value);
    }
    done();
  });
}
