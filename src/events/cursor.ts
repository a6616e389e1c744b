/**
 * The resume cursor of `GET /v1/events` (API.md, Events): where a multi-account stream stands, as
 * one opaque SSE `id:`. It maps every account the stream covers to the id of the last event of that
 * account the stream has passed (sent, or skipped by the `types` filter), so a client that reconnects
 * with it as `Last-Event-ID` gets each account's next event, no duplicate, no gap.
 *
 * Form: `c1.` + base64url(deflate-raw(JSON `{ "<account>": "<event id>", ... }`)). Deflated because
 * the cursor names every covered account and ids repeat their millisecond prefixes, so it shrinks to
 * about a third; the whole request head (where `Last-Event-ID` travels) must fit Node's 16 KiB
 * header limit. The version prefix lets a later form be told apart. Nothing in it is secret or
 * signed: a forged but well-formed cursor can only move its own reader's positions.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';

const PREFIX = 'c1.';
/** Account ids as the API allows them (`ACCOUNT_ID_PATTERN` of http/schemas/common.ts; events/ knows no HTTP). */
const ACCOUNT_ID = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,64}$/;
/** A decoded cursor larger than this was not issued here (a bound against deflate bombs, too). */
const MAX_DECODED_BYTES = 256 * 1024;

/** Encodes positions (account → last event id passed) as a cursor. */
export function encodeCursor(positions: ReadonlyMap<string, string>): string {
  const json = JSON.stringify(Object.fromEntries(positions));
  return PREFIX + deflateRawSync(Buffer.from(json, 'utf8')).toString('base64url');
}

/** The positions, or why the text is no cursor this gateway issued (a few words, for a 400's detail). */
export type DecodedCursor = { positions: Map<string, string> } | { problem: string };

/**
 * The positions a cursor holds, or what is wrong with it. `isValidId` is the event log's syntax
 * check: a cursor naming an id the log could not have issued is refused too.
 */
export function decodeCursor(cursor: string, isValidId: (id: string) => boolean): DecodedCursor {
  if (!cursor.startsWith(PREFIX)) return { problem: 'it does not start with "c1."' };
  const body = cursor.slice(PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(body)) return { problem: 'it is not base64url' };
  let parsed: unknown;
  try {
    const json = inflateRawSync(Buffer.from(body, 'base64url'), { maxOutputLength: MAX_DECODED_BYTES });
    parsed = JSON.parse(json.toString('utf8'));
  } catch {
    return { problem: 'it does not decode' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { problem: 'it holds no positions' };
  const positions = new Map<string, string>();
  for (const [account, id] of Object.entries(parsed)) {
    if (!ACCOUNT_ID.test(account) || typeof id !== 'string' || !isValidId(id)) {
      return { problem: 'it names an account or an event id this gateway does not issue' };
    }
    positions.set(account, id);
  }
  return { positions };
}
