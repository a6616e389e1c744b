/**
 * Opaque tokens handed to clients: page cursors and mailbox states. base64url JSON with a version,
 * so the layout can change without breaking clients that treat them as opaque (as they must).
 *
 * A cursor is an anchor, not an offset: it names the last message of the previous page, so mail
 * that arrives or is expunged while a client pages neither skips nor repeats messages.
 */
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

export function encodeImapCursor(cursor: ImapCursor): string {
  return Buffer.from(JSON.stringify({ v: 1, uv: cursor.uidValidity, b: cursor.beforeUid })).toString('base64url');
}

export function decodeImapCursor(token: string): ImapCursor {
  const parsed = decodeToken(token, 'cursor') as { v?: unknown; uv?: unknown; b?: unknown };
  if (parsed.v !== 1 || typeof parsed.uv !== 'string' || !/^\d+$/.test(parsed.uv)) throw badToken('cursor');
  if (typeof parsed.b !== 'number' || !Number.isInteger(parsed.b) || parsed.b < 1) throw badToken('cursor');
  return { uidValidity: parsed.uv, beforeUid: parsed.b };
}

/** A mailbox state; equal strings mean an unchanged mailbox, so it doubles as a strong ETag. */
export function encodeImapState(state: ImapState): string {
  const parts = ['i1', state.uidValidity, state.uidNext, state.exists, state.highestModseq ?? '-'];
  return Buffer.from(parts.join('.')).toString('base64url');
}

function decodeToken(token: string, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw badToken(what);
  }
}

function badToken(what: string): GatewayError {
  return new GatewayError('VALIDATION_FAILED', `query/${what} is not a ${what} this gateway issued`);
}
