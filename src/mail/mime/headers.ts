/**
 * Top-level header fields: raw header lines (as mailsplit keeps them, one latin1 "binary" string per
 * field with its folding) turned into decoded values, and the fields the API lifts out of them.
 */
import iconv from 'iconv-lite';
import libmime from 'libmime';
import { parseAddressHeader } from 'mailparser';
import type { EmailAddress } from 'mailparser';
import type { ParsedAddress } from './types.js';

export interface RawHeaderLine {
  /** Lower-case field name as mailsplit read it (re-derived here from `line`). */
  key: string;
  /** The whole field, `Name: value` with its line breaks, one char per byte. */
  line: string;
}

export interface HeaderField {
  key: string;
  /** Unfolded, charset-decoded value, encoded words (RFC 2047) still encoded. */
  raw: string;
  /** `raw` with encoded words decoded, trimmed. */
  value: string;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes header bytes. RFC 6532 allows UTF-8; other 8-bit bytes are a sender's mistake, most
 * often the charset of the body (so a raw Big5 Subject reads right when the body says big5), else
 * windows-1252, which maps every byte to something visible.
 */
function decodeHeaderBytes(binary: string, fallbackCharset?: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(binary)) return binary;
  const bytes = Buffer.from(binary, 'latin1');
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // not UTF-8, see below
  }
  if (fallbackCharset && iconv.encodingExists(fallbackCharset)) {
    try {
      return iconv.decode(bytes, fallbackCharset);
    } catch {
      // fall through to windows-1252
    }
  }
  return iconv.decode(bytes, 'windows-1252');
}

/**
 * Unfolds per RFC 5322 §2.2.3: a line break followed by white space is removed. The first white
 * space character after the break becomes a plain space, since many senders fold with a TAB that
 * stands for a space. Stray CR / LF left over (malformed input) are dropped.
 */
function unfold(value: string): string {
  return value.replace(/(?:\r\n|\n|\r)[ \t]/g, ' ').replace(/[\r\n]/g, '');
}

/** Decodes RFC 2047 encoded words; a word in an unknown charset is left as it is. */
function decodeWords(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}

/** RFC 5322 §3.6.8 field-name: printable US-ASCII except ":" (white space before the colon is obsolete syntax, trimmed). */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * Splits the raw lines into decoded fields, in order. A line that is not a header field (no colon,
 * or a "name" with spaces in it such as `quite Delivered-To:`) is skipped.
 */
export function decodeHeaderFields(lines: ReadonlyArray<RawHeaderLine>, fallbackCharset?: string): HeaderField[] {
  const fields: HeaderField[] = [];
  for (const { line } of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!FIELD_NAME.test(name)) continue;
    const raw = unfold(decodeHeaderBytes(line.slice(colon + 1), fallbackCharset)).trim();
    fields.push({ key: name, raw, value: decodeWords(raw).trim() });
  }
  return fields;
}

export function firstField(fields: HeaderField[], key: string): HeaderField | undefined {
  return fields.find((f) => f.key === key);
}

/** Removes RFC 5322 comments, nested ones included. */
export function stripComments(value: string): string {
  let previous: string;
  let current = value;
  do {
    previous = current;
    current = current.replace(/\([^()]*\)/g, ' ');
  } while (current !== previous);
  return current;
}

/**
 * The message ids (`<id-left@id-right>`, RFC 5322 §3.6.4) found in a value, angle brackets kept.
 * Comments and the white space the obsolete syntax allows inside the brackets are removed. A value
 * with no bracketed id but a bare `id@host` gives that, bracketed.
 */
export function messageIds(value: string): string[] {
  const uncommented = stripComments(value);
  const ids: string[] = [];
  for (const m of uncommented.matchAll(/<([^<>]*)>/g)) {
    const inner = (m[1] ?? '').replace(/\s+/g, '');
    if (inner) ids.push(`<${inner}>`);
  }
  if (ids.length > 0) return ids;
  return uncommented
    .split(/[\s,]+/)
    .filter((token) => /^[^<>()@\s]+@[^<>()@\s]+$/.test(token))
    .map((token) => `<${token}>`);
}

/** Flattens groups (RFC 5322 §3.4 `name: a@b, c@d;`) into their members; entries without an address are dropped. */
function flattenAddresses(list: EmailAddress[], out: ParsedAddress[]): ParsedAddress[] {
  for (const entry of list) {
    if (entry.group) flattenAddresses(entry.group, out);
    else if (entry.address) out.push({ name: entry.name || '', address: entry.address });
  }
  return out;
}

/**
 * The addresses of every field with this key (To, Cc and Bcc may legitimately repeat), or of the
 * first one only for From and Reply-To, matching mailparser's choice for single-instance fields.
 */
export function addresses(fields: HeaderField[], key: string, firstOnly: boolean): ParsedAddress[] {
  const matching = fields.filter((f) => f.key === key);
  const values = (firstOnly ? matching.slice(0, 1) : matching).map((f) => f.raw).filter(Boolean);
  if (values.length === 0) return [];
  try {
    return flattenAddresses(parseAddressHeader(values, { flatten: true }).value, []);
  } catch {
    return [];
  }
}
