/**
 * The listing page's JSON, compiled from the same schemas the listing route answers with
 * (fast-json-stringify, as Fastify compiles response schemas), so that a page the listing cache
 * stores and sends as bytes is byte for byte what the route would have serialised.
 */
import fastJson from 'fast-json-stringify';
import type { MessagePage as Page } from '../../mail/types.js';
import { Address } from './common.js';
import { MessagePage, MessageSummary } from './messages.js';

export function compilePageEncoder(): (page: Page) => string {
  return fastJson({ $ref: 'MessagePage' }, { schema: { Address, MessageSummary, MessagePage } });
}
