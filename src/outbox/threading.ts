/**
 * The pure rules of replying and forwarding (API.md, Sending: `reference`): threading headers,
 * subjects, default recipients, the forwarded message's file name and the flag to set on the
 * original. No I/O: compose.ts loads the original and calls these.
 */
import type { Address } from '../mail/types.js';
import type { OriginalMessage } from './compose.js';

export type ReferenceAction = 'reply' | 'replyAll' | 'forward';

export interface ThreadingHeaders {
  /** The original's Message-ID, or undefined when it had none (then there is nothing to reply to). */
  inReplyTo: string | undefined;
  /** Oldest first; empty when the original had neither References nor a Message-ID. */
  references: string[];
}

/**
 * RFC 5322 §3.6.4: In-Reply-To is the parent's Message-ID; References is the parent's References
 * followed by its Message-ID. Duplicates are dropped (first occurrence wins) so a thread whose
 * References already repeat does not grow without end.
 */
export function threadingHeaders(original: Pick<OriginalMessage, 'messageId' | 'references'>): ThreadingHeaders {
  const seen = new Set<string>();
  const references: string[] = [];
  for (const id of [...original.references, ...(original.messageId === null ? [] : [original.messageId])]) {
    const trimmed = id.trim();
    if (trimmed === '' || seen.has(trimmed)) continue;
    seen.add(trimmed);
    references.push(trimmed);
  }
  const inReplyTo = original.messageId?.trim();
  return { inReplyTo: inReplyTo === '' ? undefined : inReplyTo, references };
}

// Prefixes already there are kept rather than stacked ("Re: Re: Re: …"). Only the English forms are
// recognised: localised ones (Aw:, Sv:, …) get a "Re: " in front, which is harmless.
const REPLY_PREFIX = /^\s*re\s*:/i;
const FORWARD_PREFIX = /^\s*fwd?\s*:/i;

function prefixed(prefix: string, pattern: RegExp, subject: string | null): string {
  const original = (subject ?? '').trim();
  if (original === '') return prefix;
  return pattern.test(original) ? original : `${prefix} ${original}`;
}

/** `Re: <subject>`, unless it already starts with `Re:` (any case). */
export function replySubject(subject: string | null): string {
  return prefixed('Re:', REPLY_PREFIX, subject);
}

/** `Fwd: <subject>`, unless it already starts with `Fwd:` or `Fw:` (any case). */
export function forwardSubject(subject: string | null): string {
  return prefixed('Fwd:', FORWARD_PREFIX, subject);
}

/** Lower-cased whole address: the comparison used for "the account's own address" and duplicates. */
function addressKey(address: string): string {
  return address.trim().toLowerCase();
}

/**
 * Drops entries without an address, entries `keep` refuses, duplicates (case-insensitive, against
 * `seen` too, which is updated) and `own` addresses; keeps order and the first spelling.
 */
function uniqueAddresses(list: ReadonlyArray<Address>, seen: Set<string>, own: ReadonlySet<string>, keep: (a: Address) => boolean): Address[] {
  const out: Address[] = [];
  for (const entry of list) {
    const key = addressKey(entry.address);
    if (key === '' || own.has(key) || seen.has(key) || !keep(entry)) continue;
    seen.add(key);
    out.push({ name: entry.name, address: entry.address.trim() });
  }
  return out;
}

export interface ReplyRecipients {
  to: Address[];
  cc: Address[];
}

/**
 * Default recipients of a reply (used only when the request gives no `to`).
 * - `reply`: the original's Reply-To when it has one (RFC 5322 §3.6.2: where the author wants
 *   replies), else its From. The account's own address is not removed here: replying to one's own
 *   message goes where its Reply-To/From say, as asked.
 * - `replyAll`: that, plus the original's To (into `to`) and Cc (into `cc`), minus the account's
 *   own addresses (`ownAddresses`, compared case-insensitively on the whole address), without
 *   duplicates across `to` and `cc`.
 * `keep` lets the caller drop addresses it cannot send to (an original may carry
 * `undisclosed-recipients:;` or a bare local name); they are skipped, not reported, since the
 * caller did not write them.
 */
export function replyRecipients(
  original: Pick<OriginalMessage, 'from' | 'replyTo' | 'to' | 'cc'>,
  action: 'reply' | 'replyAll',
  ownAddresses: ReadonlyArray<string>,
  keep: (a: Address) => boolean = () => true,
): ReplyRecipients {
  const author = original.replyTo.some((a) => a.address.trim() !== '') ? original.replyTo : original.from;
  const seen = new Set<string>();
  if (action === 'reply') return { to: uniqueAddresses(author, seen, new Set(), keep), cc: [] };
  const own = new Set(ownAddresses.map(addressKey).filter((k) => k !== ''));
  const to = uniqueAddresses([...author, ...original.to], seen, own, keep);
  const cc = uniqueAddresses(original.cc, seen, own, keep);
  return { to, cc };
}

/** Characters that file systems or Content-Disposition consumers mishandle in a file name. */
// eslint-disable-next-line no-control-regex
const UNSAFE_FILENAME_CHARS = /[\u0000-\u001f\u007f<>:"/\\|?*]+/g;
const MAX_FILENAME_STEM = 100;

/**
 * The file name of a forwarded message: its subject made safe for a file system (no path
 * separators, reserved or control characters, no leading dots), at most 100 characters, plus
 * `.eml`; `message.eml` when nothing is left. Non-ASCII is kept: MailComposer writes it as an
 * RFC 2231 parameter.
 */
export function forwardFileName(subject: string | null): string {
  let stem = (subject ?? '').replace(UNSAFE_FILENAME_CHARS, ' ').replace(/\s+/g, ' ').trim().replace(/^\.+/, '').trim();
  // Cut by code points so a surrogate pair (emoji) is never split in half.
  const chars = Array.from(stem);
  if (chars.length > MAX_FILENAME_STEM) stem = chars.slice(0, MAX_FILENAME_STEM).join('').trimEnd();
  return `${stem.replace(/\.+$/, '') || 'message'}.eml`;
}

/** What to set on the original once the server accepted the message (API.md; RFC 9051 §2.3.2, RFC 5788 `$Forwarded`). */
export function originalFlag(action: ReferenceAction): '\\Answered' | '$Forwarded' {
  return action === 'forward' ? '$Forwarded' : '\\Answered';
}
