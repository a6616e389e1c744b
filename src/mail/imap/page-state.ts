/**
 * The listing state of a server without CONDSTORE (RFC 7162). No mailbox-wide value changes when a
 * flag does, so the state of a page is the mailbox's (UIDVALIDITY, UIDNEXT, EXISTS) plus a digest of
 * the UIDs and flags the page shows, plus those UIDs as an IMAP sequence set (RFC 9051 §9,
 * `sequence-set`). The set lets a later `If-Match` recompute the very same state with one
 * `UID FETCH <set> (FLAGS)` (precondition.ts), whatever cursor and filters built the page.
 *
 *   <mailbox state>.<digest>.<uid set, or "-" for an empty page>
 *
 * None of the three parts contains a ".", so the layout splits back unambiguously.
 */
import { createHash } from 'node:crypto';

export interface PageFlags {
  uid: number;
  /** As the summary reports them (visibleFlags, sorted). */
  flags: readonly string[];
}

export function encodePageState(mailboxState: string, messages: readonly PageFlags[]): string {
  return `${mailboxState}.${pageDigest(messages)}.${uidSet(messages.map((m) => m.uid))}`;
}

export interface DecodedPageState {
  mailboxState: string;
  digest: string;
  /** The page's UIDs as a sequence set, or null for an empty page. */
  uids: string | null;
}

/** The parts of a page state, or null when `state` is not one (a CONDSTORE state, another kind). */
export function decodePageState(state: string): DecodedPageState | null {
  const parts = state.split('.');
  if (parts.length !== 3) return null;
  const [mailboxState = '', digest = '', uids = ''] = parts;
  if (!/^[A-Za-z0-9_-]+$/.test(mailboxState) || !/^[A-Za-z0-9_-]{16}$/.test(digest)) return null;
  if (uids !== '-' && !/^\d+(?::\d+)?(?:,\d+(?::\d+)?)*$/.test(uids)) return null;
  return { mailboxState, digest, uids: uids === '-' ? null : uids };
}

/** Digest of a page's UIDs and flags in page order (newest first). */
export function pageDigest(messages: readonly PageFlags[]): string {
  // One update of the whole text (the same digest as one per message): a crossing into the native
  // hash per message cost more than the hashing itself (row (p)'s profile).
  let text = '';
  for (const m of messages) text += `${m.uid}:${m.flags.join(' ')};`;
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

/** Ascending UIDs folded into ranges: [3, 1, 2, 7] → "1:3,7". */
function uidSet(uids: readonly number[]): string {
  const ranges: Array<[number, number]> = [];
  for (const uid of [...new Set(uids)].sort((a, b) => a - b)) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && uid === last[1] + 1) last[1] = uid;
    else ranges.push([uid, uid]);
  }
  return ranges.length === 0 ? '-' : ranges.map(([a, b]) => (a === b ? String(a) : `${a}:${b}`)).join(',');
}
