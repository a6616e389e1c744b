/**
 * Request validation. Query strings, path parameters and headers arrive as text, so they are
 * coerced to the schema's types (`limit=10` → 10); JSON bodies are not: `{"port": "143"}` or
 * `{"tlsVerify": "false"}` is a client bug that should be a 400, not silently accepted.
 * Unknown body fields are errors too (no `removeAdditional`).
 *
 * A raw body (a schema of `format: binary`, such as a message/rfc822 upload) arrives as a Buffer
 * from its content-type parser: it has no JSON shape to check, so only its body validator is a
 * pass (the handler checks the bytes). Its route's query and path parameters are validated like
 * every other route's; a route-level `validatorCompiler` would switch those off too.
 */
import { Ajv, type Options } from 'ajv';
import * as addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM interop.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default: { default?: AddFormats } & AddFormats }).default.default ??
  (addFormatsModule as unknown as { default: AddFormats }).default) as AddFormats;

const common: Options = { useDefaults: true, removeAdditional: false, allErrors: false, strict: false };

export function registerValidation(app: FastifyInstance): void {
  const coercing = new Ajv({ ...common, coerceTypes: 'array' });
  const strict = new Ajv({ ...common, coerceTypes: false });
  addFormats(coercing);
  addFormats(strict);
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart === 'body' && isRawBody(schema)) return () => true;
    return (httpPart === 'body' ? strict : coercing).compile(schema);
  });
}

function isRawBody(schema: unknown): boolean {
  const s = schema as { type?: unknown; format?: unknown } | null;
  return s?.type === 'string' && s.format === 'binary';
}
