/**
 * Opaque tokens handed to clients: page cursors and mailbox states. base64url JSON with a version,
 * so the layout can change without breaking clients that treat them as opaque (as they must).
 *
 * A cursor is an anchor, not an offset: it names the last message of the previous page, so mail
 * that arrives or is expunged while a client pages neither skips nor repeats messages.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../errors.js';

export interface ImapCursor {
  /** UIDVALIDITY the anchor belongs to. */
  uidValidity: string;
  /** The next page holds messages with UIDs below this one. */
  beforeUid: number;
}

export interface ImapState {
  uidValidity: string;
  uidNext: number;
  exists: number;
  /** HIGHESTMODSEQ (RFC 7162) when the server has CONDSTORE, else null. */
  highestModseq: string | null;
}

const MAX_UINT32 = 4294967295;

export function encodeImapCursor(cursor: ImapCursor): string {
  return Buffer.from(JSON.stringify({ v: 1, uv: cursor.uidValidity, b: cursor.beforeUid })).toString('base64url');
}

export function decodeImapCursor(token: string): ImapCursor {
  const parsed = decodeToken(token, 'cursor') as { v?: unknown; uv?: unknown; b?: unknown } | null;
  // `null` is valid JSON too: without this check it would crash below as a 500.
  if (parsed === null || typeof parsed !== 'object') throw badToken('cursor');
  // UIDVALIDITY and UIDs are 32-bit (RFC 9051 §2.3.1.1, nz-number); the anchor may be one past the
  // highest UID. Anything larger was not issued here, and would reach the server as a bad UID set.
  if (parsed.v !== 1 || typeof parsed.uv !== 'string' || !/^[1-9]\d{0,9}$/.test(parsed.uv) || Number(parsed.uv) > MAX_UINT32) {
    throw badToken('cursor');
  }
  if (typeof parsed.b !== 'number' || !Number.isInteger(parsed.b) || parsed.b < 1 || parsed.b > MAX_UINT32 + 1) throw badToken('cursor');
  return { uidValidity: parsed.uv, beforeUid: parsed.b };
}

/** A mailbox state; equal strings mean an unchanged mailbox, so it doubles as a strong ETag. */
export function encodeImapState(state: ImapState): string {
  const parts = ['i1', state.uidValidity, state.uidNext, state.exists, state.highestModseq ?? '-'];
  return Buffer.from(parts.join('.')).toString('base64url');
}

/** The state a listing or /changes answered, or `STATE_TOO_OLD`-worthy garbage as VALIDATION_FAILED. */
export function decodeImapState(token: string): ImapState {
  const parts = Buffer.from(token, 'base64url').toString('utf8').split('.');
  const [tag, uidValidity = '', uidNext = '', exists = '', modseq = ''] = parts;
  // UIDVALIDITY, UIDNEXT and EXISTS are 32-bit (RFC 9051 §2.3.1), a MODSEQ 64-bit (RFC 7162 §7).
  const uint32 = (v: string, max = MAX_UINT32): boolean => /^\d{1,10}$/.test(v) && Number(v) <= max;
  if (parts.length !== 5 || tag !== 'i1' || !uint32(uidValidity) || !uint32(uidNext, MAX_UINT32 + 1) || !uint32(exists)) {
    throw badToken('since');
  }
  if (modseq !== '-' && !/^\d{1,20}$/.test(modseq)) throw badToken('since');
  return { uidValidity, uidNext: Number(uidNext), exists: Number(exists), highestModseq: modseq === '-' ? null : modseq };
}

function decodeToken(token: string, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw badToken(what);
  }
}

function badToken(what: string): GatewayError {
  return new GatewayError('VALIDATION_FAILED', `query/${what} is not a ${what === 'since' ? 'state' : what} this gateway issued`);
}

// --- POP3 -------------------------------------------------------------------------------------------

/**
 * A POP3 page cursor. POP3 message numbers live one session only (RFC 1939 §5), so the anchor is the
 * UIDL of the last message of the previous page, which survives across sessions (RFC 1939 §7). The
 * next page holds the messages older than the anchor (lower message numbers: arrival order).
 *
 * Each page is computed over the snapshot of the session that serves it; a POP3 session sees the
 * maildrop as it was at login. So that deleting the anchor itself between two pages neither skips nor
 * repeats messages, the cursor also carries the UIDLs of the next few older messages (`following`):
 * the page then starts at the first of them still present. Only when all of them are gone too does it
 * fall back to the anchor's message number, which can at worst repeat a few messages, never skip one
 * (deletes only lower message numbers; new mail is appended at the end).
 */
export interface Pop3Cursor {
  /** UIDL of the last message of the previous page. */
  anchorUidl: string;
  /** Its message number in the snapshot that issued the cursor. */
  anchorNumber: number;
  /** UIDLs of the messages just below the anchor, newest first (at most a few). */
  following: string[];
}

export function encodePop3Cursor(cursor: Pop3Cursor): string {
  const body = { v: 1, p: 'pop3', a: cursor.anchorUidl, n: cursor.anchorNumber, f: cursor.following };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

export function decodePop3Cursor(token: string): Pop3Cursor {
  const parsed = decodeToken(token, 'cursor') as { v?: unknown; p?: unknown; a?: unknown; n?: unknown; f?: unknown };
  const isUidl = (value: unknown): value is string => typeof value === 'string' && /^[\x21-\x7e]{1,70}$/.test(value);
  if (parsed === null || typeof parsed !== 'object' || parsed.v !== 1 || parsed.p !== 'pop3') throw badToken('cursor');
  if (!isUidl(parsed.a)) throw badToken('cursor');
  if (typeof parsed.n !== 'number' || !Number.isInteger(parsed.n) || parsed.n < 1) throw badToken('cursor');
  if (!Array.isArray(parsed.f) || parsed.f.length > 16 || !parsed.f.every(isUidl)) throw badToken('cursor');
  return { anchorUidl: parsed.a, anchorNumber: parsed.n, following: parsed.f };
}

/**
 * A POP3 maildrop's state: a digest of its UIDL list in order. Equal for an unchanged maildrop (no
 * flags exist in POP3, so arrivals and deletions are all there is to change), hence a strong ETag.
 */
export function encodePop3State(uidls: readonly string[]): string {
  const digest = createHash('sha256').update(uidls.join('\n')).digest('base64url').slice(0, 27);
  return `p1${uidls.length.toString(36)}.${digest}`;
}

/** Whether `state` has the layout encodePop3State writes (a maildrop state, not an IMAP one). */
export function isPop3State(state: string): boolean {
  return /^p1[0-9a-z]+\.[A-Za-z0-9_-]{27}$/.test(state);
}
