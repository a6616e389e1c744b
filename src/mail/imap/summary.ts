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
 * True when some part is a real attachment: `Content-Disposition: attachment`, or a named non-text
 * leaf that is not an inline image referenced by the HTML. Mirrors the parsed message's rule
 * (src/mail/mime) closely enough that a listing's paperclip matches the message view.
 */
export function structureHasAttachments(node: MessageStructureObject): boolean {
  if (node.childNodes && node.childNodes.length > 0) {
    return node.childNodes.some((child) => structureHasAttachments(child));
  }
  const disposition = (node.disposition ?? '').toLowerCase();
  if (disposition === 'attachment') return true;
  if (disposition === 'inline') return false;
  const type = (node.type ?? '').toLowerCase();
  if (type === 'message/rfc822') return true;
  const named = Boolean(node.dispositionParameters?.filename ?? node.parameters?.name);
  return named && !type.startsWith('text/') && !node.id;
}
