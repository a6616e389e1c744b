/**
 * The `If-Match` request header (RFC 9110 §13.1.1) of a write, parsed into a plain StateCondition
 * the mail service understands.
 *
 *   If-Match     = "*" / #entity-tag                       (RFC 9110 §13.1.1)
 *   entity-tag   = [ weak ] opaque-tag                      (§8.8.3)
 *   weak         = %s"W/"
 *   opaque-tag   = DQUOTE *etagc DQUOTE
 *   etagc        = %x21 / %x23-7E / obs-text
 *
 * An etagc may be a comma, so the list is scanned, not split. Empty list elements are allowed
 * (§5.6.1); a header with no tag at all, or anything outside the grammar, is VALIDATION_FAILED.
 */
import { GatewayError } from '../errors.js';
import type { StateCondition } from '../mail/types.js';

/** `undefined` when the header is absent: the write is unconditional. */
export function parseIfMatch(header: string | undefined): StateCondition | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value === '*') return { kind: 'any' };
  const states: string[] = [];
  let at = 0;
  let tags = 0;
  while (at < value.length) {
    at = skipOws(value, at);
    if (value[at] === ',') {
      at++;
      continue;
    }
    const weak = value.startsWith('W/', at);
    if (weak) at += 2;
    if (value[at] !== '"') throw malformed(value);
    const end = closingQuote(value, at + 1);
    if (end === -1) throw malformed(value);
    tags++;
    // Weak tags never match a write (strong comparison), so only strong ones are kept.
    if (!weak) states.push(value.slice(at + 1, end));
    at = skipOws(value, end + 1);
    if (at < value.length && value[at] !== ',') throw malformed(value);
  }
  if (tags === 0) throw malformed(value);
  return { kind: 'states', states };
}

/** Index of the quote that ends an opaque-tag starting at `from`, or -1 if a byte is not an etagc. */
function closingQuote(value: string, from: number): number {
  for (let i = from; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22) return i;
    if (c < 0x21 || c === 0x7f) return -1;
  }
  return -1;
}

function skipOws(value: string, from: number): number {
  let at = from;
  while (value[at] === ' ' || value[at] === '\t') at++;
  return at;
}

function malformed(value: string): GatewayError {
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return new GatewayError(
    'VALIDATION_FAILED',
    `headers/if-match must be * or a list of entity tags such as "<state>" (the listing's state in quotes), not ${JSON.stringify(shown)}`,
  );
}
