/**
 * The listing page's JSON, compiled from the same schemas the listing route answers with
 * (fast-json-stringify, as Fastify compiles response schemas), so that a page the listing cache
 * stores and sends as bytes is byte for byte what the route would have serialised.
 */
import { createHash } from 'node:crypto';
import fastJson from 'fast-json-stringify';
import type { MessagePage as Page } from '../../mail/types.js';
import { Address } from './common.js';
import { MessagePage, MessageSummary } from './messages.js';

export interface PageEncoder {
  encode: (page: Page) => string;
  /** A digest of the schemas: changes whenever the JSON layout can. */
  layout: string;
}

export function compilePageEncoder(): PageEncoder {
  const schemas = { Address, MessageSummary, MessagePage };
  return {
    encode: fastJson({ $ref: 'MessagePage' }, { schema: schemas }),
    layout: createHash('sha256').update(JSON.stringify(schemas)).digest('base64url').slice(0, 8),
  };
}
