/**
 * FETCH results → the API's message summary. Pure functions, no I/O.
 */
import type { FetchMessageObject, MessageAddressObject, MessageStructureObject } from 'imapflow';
import { encodeImapMessageId } from '../message-id.js';
import type { Address, MessageSummary } from '../types.js';

/** What a listing asks the server for each message (all of it comes from Dovecot's index cache). */
export const SUMMARY_FETCH_QUERY = {
  uid: true,
  flags: true,
  envelope: true,
  internalDate: true,
  size: true,
  bodyStructure: true,
} as const;

export function toSummary(msg: FetchMessageObject, uidValidity: bigint): MessageSummary {
  const env = msg.envelope;
  const flags = visibleFlags(msg.flags);
  return {
    id: encodeImapMessageId(uidValidity, msg.uid),
    uid: msg.uid,
    messageId: env?.messageId ?? null,
    subject: env?.subject ?? null,
    from: addresses(env?.from),
    to: addresses(env?.to),
    cc: addresses(env?.cc),
    date: isoDate(env?.date),
    receivedAt: isoDate(msg.internalDate),
    size: msg.size ?? 0,
    flags,
    seen: flags.includes('\\Seen'),
    flagged: flags.includes('\\Flagged'),
    hasAttachments: msg.bodyStructure ? structureHasAttachments(msg.bodyStructure) : null,
    preview: null,
  };
}

/** `\Recent` is never reported: it is gone in IMAP4rev2 (RFC 9051 §7.5.2 note) and per-session anyway. */
export function visibleFlags(flags: Set<string> | undefined): string[] {
  return [...(flags ?? [])].filter((f) => f.toLowerCase() !== '\\recent').sort();
}

function addresses(list: MessageAddressObject[] | undefined): Address[] {
  return (list ?? [])
    .filter((a) => a.address || a.name)
    .map((a) => ({ name: a.name ?? '', address: a.address ?? '' }));
}

function isoDate(value: Date | string | undefined): string | null {
  if (value === undefined) return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/**
 * True when the message view (src/mail/mime/parse-message.ts over mailparser) would list an
 * attachment that is not an embedded inline resource, judged from BODYSTRUCTURE alone, so a
 * listing's paperclip matches the message view without fetching bodies. mailparser's rule, leaf by
 * leaf (a message/rfc822 part is one leaf: the view keeps it as one attachment and never looks in):
 * - a part is an attachment unless it is text/plain, text/html or message/delivery-status with
 *   no disposition or `inline` (a disposition other than attachment/inline counts as attachment);
 * - it is left out of `hasAttachments` when it is embedded: it has a Content-ID, sits inside
 *   multipart/related, and its disposition is `inline` or absent.
 * The view also counts as embedded a part whose Content-ID the HTML references (`cid:`) outside
 * multipart/related; BODYSTRUCTURE cannot tell that, so such a message is flagged here and not there.
 */
function structureHasAttachments(node: MessageStructureObject, insideRelated = false): boolean {
  const type = (node.type ?? '').toLowerCase();
  if (type.startsWith('multipart/')) {
    const related = insideRelated || type === 'multipart/related';
    return (node.childNodes ?? []).some((child) => structureHasAttachments(child, related));
  }
  const declared = node.disposition ? node.disposition.toLowerCase() : undefined;
  const bodyType = BODY_TYPES.has(type || 'text/plain');
  const disposition =
    declared !== undefined && declared !== 'inline' && declared !== 'attachment'
      ? 'attachment'
      : (declared ?? (bodyType ? 'inline' : 'attachment'));
  const isAttachment = !bodyType || disposition !== 'inline';
  if (!isAttachment) return false;
  const embedded = Boolean(node.id) && insideRelated && (declared === undefined || declared === 'inline');
  return !embedded;
}

/** What mailparser takes for body text rather than an attachment (with keepDeliveryStatus: false). */
const BODY_TYPES = new Set(['text/plain', 'text/html', 'message/delivery-status']);
