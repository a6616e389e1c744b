/**
 * Top-level header fields: raw header lines (as mailsplit keeps them, one latin1 "binary" string per
 * field with its folding) turned into decoded values, and the fields the API lifts out of them.
 */
import iconv from 'iconv-lite';
import libmime from 'libmime';
import { domainToUnicode } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import type { ParsedAddress } from './types.js';

export interface RawHeaderLine {
  /** Lower-case field name as mailsplit read it (re-derived here from `line`). */
  key: string;
  /** The whole field, `Name: value` with its line breaks, one char per byte. */
  line: string;
}

export interface HeaderField {
  key: string;
  /** The unfolded value as bytes (one char per byte), encoded words still encoded. */
  binary: string;
  /** The value decoded: header bytes and encoded words (RFC 2047) alike, trimmed. */
  value: string;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes header bytes outside encoded words. RFC 6532 allows UTF-8; other 8-bit bytes are a
 * sender's mistake, most often the charset of the body (so a raw Big5 Subject reads right when the
 * body says big5), else windows-1252, which maps every byte to something visible.
 */
function decodeHeaderBytes(binary: string, fallbackCharset?: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(binary)) return binary;
  return decodeGuessing(Buffer.from(binary, 'latin1'), fallbackCharset);
}

function decodeGuessing(bytes: Buffer, fallbackCharset: string | undefined): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // not UTF-8, see below
  }
  const fallback = fallbackCharset === undefined ? null : resolveCharset(fallbackCharset);
  if (fallback !== null && fallback !== 'utf-7') {
    try {
      // A charset that cannot read these bytes (us-ascii for 8-bit ones, say) is not the one they are in.
      const text = iconv.decode(bytes, fallback);
      if (!text.includes('\uFFFD')) return text;
    } catch {
      // fall through to windows-1252
    }
  }
  return iconv.decode(bytes, 'windows-1252');
}

/**
 * The charset a label names, as iconv-lite knows it, or null. Senders write broken labels:
 * quoted, with an RFC 2231 language (`utf-8*en`), or with garbage glued on
 * (`windows-1252http-equiv=...` from a copied HTML meta tag): the longest known prefix is taken.
 */
export function resolveCharset(label: string): string | null {
  const name = label.trim().replace(/^["']|["']$/g, '').split('*')[0]!.trim().toLowerCase().slice(0, 64);
  if (name === '') return null;
  if (known(name)) return name;
  for (let end = name.length - 1; end >= 3; end--) {
    const prefix = name.slice(0, end);
    if (/[a-z0-9]$/.test(prefix) && known(prefix)) return prefix;
  }
  return null;
}

// iconv-lite types encodingExists as a type guard, which would narrow a refused name to `never`.
const known = (name: string): boolean => iconv.encodingExists(name);

/** RFC 2047 §2 encoded word, matched on the header's bytes: raw 8-bit bytes inside are taken as bytes. */
const ENCODED_WORD = /=\?([^?\s]+?)\?([bBqQ])\?([^?]*)\?=/g;

/** RFC 2047 §4.2 "Q": `_` is a space, `=XX` a byte, anything else the byte it is (raw 8-bit included). */
function decodeQ(binary: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < binary.length; i++) {
    const c = binary.charCodeAt(i);
    if (c === 0x5f) bytes.push(0x20);
    else if (c === 0x3d && /^[0-9a-fA-F]{2}$/.test(binary.slice(i + 1, i + 3))) {
      bytes.push(parseInt(binary.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c & 0xff);
  }
  return Buffer.from(bytes);
}

/** Charsets iconv-lite lacks and libmime decodes (with encoding-japanese), as it does for bodies. */
const JAPANESE = /^(?:jis|iso-?2022-?jp|euc-?jp)/i;

function decodeWordBytes(bytes: Buffer, label: string, fallbackCharset: string | undefined): string {
  if (JAPANESE.test(label.trim())) {
    try {
      return libmime.decodeWord(label.trim(), 'B', bytes.toString('base64'));
    } catch {
      return decodeGuessing(bytes, fallbackCharset);
    }
  }
  const charset = resolveCharset(label);
  if (charset === null) return decodeGuessing(bytes, fallbackCharset);
  if (charset === 'utf-8' || charset === 'utf8') return decodeGuessing(bytes, fallbackCharset);
  try {
    return iconv.decode(bytes, charset);
  } catch {
    return decodeGuessing(bytes, fallbackCharset);
  }
}

/**
 * A header value's bytes (one char per byte) decoded: encoded words (RFC 2047) at byte level, with
 * raw 8-bit bytes inside them kept as bytes and adjacent words of one charset joined before decoding
 * (a character split across two words stays whole); the white space between adjacent encoded words
 * dropped (§6.2); other bytes as `decodeHeaderBytes` does. Any charset iconv-lite knows, UTF-7 too
 * (a header is text, never markup: the body's UTF-7 stays undecoded, see parse-message.ts).
 */
export function decodeHeaderValue(binary: string, fallbackCharset?: string): string {
  let out = '';
  let last = 0;
  let pending: { label: string; charset: string | null; bytes: Buffer[] } | null = null;
  const flush = (): void => {
    if (pending === null) return;
    out += decodeWordBytes(Buffer.concat(pending.bytes), pending.label, fallbackCharset);
    pending = null;
  };
  for (const m of binary.matchAll(ENCODED_WORD)) {
    const label = m[1]!;
    const payload = m[3]!;
    const bytes = m[2] === 'b' || m[2] === 'B' ? Buffer.from(payload.replace(/[^A-Za-z0-9+/]/g, ''), 'base64') : decodeQ(payload);
    const between = binary.slice(last, m.index);
    const charset = resolveCharset(label);
    if (pending !== null && /^[ \t]*$/.test(between)) {
      if (pending.charset === charset && charset !== null) pending.bytes.push(bytes);
      else {
        flush();
        pending = { label, charset, bytes: [bytes] };
      }
    } else {
      flush();
      out += decodeHeaderBytes(between, fallbackCharset);
      pending = { label, charset, bytes: [bytes] };
    }
    last = m.index + m[0].length;
  }
  flush();
  return out + decodeHeaderBytes(binary.slice(last), fallbackCharset);
}

/**
 * Unfolds per RFC 5322 §2.2.3: a line break followed by white space is removed. The first white
 * space character after the break becomes a plain space, since many senders fold with a TAB that
 * stands for a space. Stray CR / LF left over (malformed input) are dropped.
 */
function unfold(value: string): string {
  return value.replace(/(?:\r\n|\n|\r)[ \t]/g, ' ').replace(/[\r\n]/g, '');
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
    const binary = unfold(line.slice(colon + 1)).trim();
    fields.push({ key: name, binary, value: decodeHeaderValue(binary, fallbackCharset).trim() });
  }
  return fields;
}

/** A header block's bytes (as a FETCH of HEADER.FIELDS gives them) split into its fields, with their folding. */
export function splitHeaderBlock(block: Buffer): RawHeaderLine[] {
  return block
    .toString('latin1')
    .split(/\r?\n(?=[^ \t])/)
    .filter((line) => line.trim() !== '')
    .map((line) => ({ key: line.slice(0, Math.max(0, line.indexOf(':'))).trim().toLowerCase(), line }));
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

/**
 * The addresses of every field with this key (To, Cc and Bcc may legitimately repeat), or of the
 * first one only for From and Reply-To, matching mailparser's choice for single-instance fields.
 * Parsed on the header's bytes (nodemailer's addressparser, which mailparser uses too), each display
 * name then decoded like any header text (`decodeHeaderValue`), groups flattened into their members,
 * entries without an address dropped. As in mailparser, an encoded word in the address itself
 * (RFC 2047 §5 forbids it) counts only if it decodes to a plain `local@domain`, and a punycode
 * domain is shown in Unicode.
 */
export function addresses(fields: HeaderField[], key: string, firstOnly: boolean, fallbackCharset?: string): ParsedAddress[] {
  const matching = fields.filter((f) => f.key === key);
  const out: ParsedAddress[] = [];
  for (const field of firstOnly ? matching.slice(0, 1) : matching) {
    if (field.binary === '') continue;
    let parsed: Array<{ name: string; address?: string }>;
    try {
      parsed = addressparser(field.binary, { flatten: true }) as Array<{ name: string; address?: string }>;
    } catch {
      continue;
    }
    for (const entry of parsed) {
      const address = addressOf(entry.address ?? '', fallbackCharset);
      if (address === '') continue;
      out.push({ name: decodeHeaderValue(entry.name ?? '', fallbackCharset).trim(), address });
    }
  }
  return out;
}

function addressOf(binary: string, fallbackCharset: string | undefined): string {
  let address = decodeHeaderBytes(binary.trim(), fallbackCharset);
  if (/=\?[^?]+\?[bBqQ]\?[^?]*\?=/.test(address)) {
    const decoded = decodeHeaderValue(binary.trim(), fallbackCharset);
    address = /^[^\s@]+@[^\s@]+$/.test(decoded) && !decoded.includes('=?') ? decoded : '';
  }
  const at = address.lastIndexOf('@');
  if (at > 0 && /(^|\.)xn--/i.test(address.slice(at + 1))) {
    const unicode = domainToUnicode(address.slice(at + 1));
    if (unicode !== '') address = address.slice(0, at + 1) + unicode;
  }
  return address;
}
