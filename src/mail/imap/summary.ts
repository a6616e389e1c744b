/**
 * FETCH results → the API's message summary. Pure functions, but for `redecodeFromHeaders`, the one
 * extra FETCH of header bytes for the rare summaries whose ENVELOPE text the server could not decode.
 */
import type { FetchMessageObject, ImapFlow, MessageAddressObject, MessageStructureObject } from 'imapflow';
import { addresses as headerAddresses, decodeHeaderFields, firstField, splitHeaderBlock } from '../mime/headers.js';
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

/**
 * The summaries of the messages in `range` (sequence numbers, or UIDs with `byUid`), in the server's
 * order: one FETCH, plus one of header bytes for those whose ENVELOPE text the server could not decode.
 * Every summary the gateway shows (listings, changes, events, a single message) is built here.
 */
export async function fetchSummaries(client: ImapFlow, range: string, uidValidity: bigint, byUid: boolean): Promise<MessageSummary[]> {
  const summaries: MessageSummary[] = [];
  const lossy: LossySummary[] = [];
  const asked = sequenceSet(range);
  for await (const msg of client.fetch(range, SUMMARY_FETCH_QUERY, byUid ? { uid: true } : {})) {
    // imapflow also yields unsolicited FETCH responses (another client's flag change) during the command.
    if (msg.uid === undefined || !asked(byUid ? msg.uid : msg.seq)) continue;
    const summary = toSummary(msg, uidValidity);
    summaries.push(summary);
    const damaged = lossyEnvelope(msg, summary);
    if (damaged !== null) lossy.push(damaged);
  }
  await redecodeFromHeaders(client, lossy);
  return summaries;
}

/** A membership test for an IMAP sequence set of numbers and ranges (`3`, `1:5`, `2,7:9`; RFC 9051 §9). */
function sequenceSet(set: string): (n: number) => boolean {
  const ranges = set.split(',').map((part) => {
    const [a = '', b = a] = part.split(':');
    const [lo, hi] = [Number(a), Number(b)].sort((x, y) => x - y) as [number, number];
    return [lo, hi] as const;
  });
  return (n) => ranges.some(([lo, hi]) => n >= lo && n <= hi);
}

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

/**
 * What a server writes into ENVELOPE where the header holds no address it can read (Dovecot:
 * `MISSING_MAILBOX`, `MISSING_DOMAIN`, `SYNTAX_ERROR`): never shown as if it were an address.
 */
const PLACEHOLDER_ADDRESS = /^MISSING_MAILBOX@|@(?:MISSING_DOMAIN|SYNTAX_ERROR)$/;

function addresses(list: MessageAddressObject[] | undefined): Address[] {
  return (list ?? [])
    .map((a) => ({ name: a.name ?? '', address: a.address && !PLACEHOLDER_ADDRESS.test(a.address) ? a.address : '' }))
    .filter((a) => a.address || a.name);
}

/**
 * Text the server could not decode: replacement characters (8-bit bytes in no charset it knew), the
 * same read as Latin-1 (`ï¿½`: raw 8-bit inside an encoded word, whose bytes were replaced before the
 * word was decoded), or an encoded word left as it was.
 */
const LOSSY = /\uFFFD|\u00EF\u00BF\u00BD|=\?[^?\s]+\?[bBqQ]\?/;

/** A summary whose ENVELOPE text is lossy, and the charset to read its header bytes in (the body's, as the view does). */
interface LossySummary {
  summary: MessageSummary;
  charset: string | undefined;
}

function lossyEnvelope(msg: FetchMessageObject, summary: MessageSummary): LossySummary | null {
  const texts = [summary.subject ?? '', ...[...summary.from, ...summary.to, ...summary.cc].map((a) => a.name)];
  if (!texts.some((text) => LOSSY.test(text))) return null;
  const charset = msg.bodyStructure?.parameters?.charset;
  return { summary, charset: typeof charset === 'string' ? charset : undefined };
}

/**
 * Subject and addresses of lossy summaries decoded from the header bytes (one FETCH of
 * HEADER.FIELDS for those messages only), as the message view decodes them (mime/headers.ts).
 */
async function redecodeFromHeaders(client: ImapFlow, lossy: LossySummary[]): Promise<void> {
  if (lossy.length === 0) return;
  const byUid = new Map(lossy.filter((l) => l.summary.uid !== undefined).map((l) => [l.summary.uid!, l]));
  for await (const msg of client.fetch([...byUid.keys()].join(','), { uid: true, headers: ['subject', 'from', 'to', 'cc'] }, { uid: true })) {
    const entry = byUid.get(msg.uid);
    if (entry === undefined || !msg.headers) continue;
    const fields = decodeHeaderFields(splitHeaderBlock(msg.headers), entry.charset);
    const subject = firstField(fields, 'subject')?.value;
    entry.summary.subject = subject ? subject : null;
    entry.summary.from = headerAddresses(fields, 'from', true, entry.charset);
    entry.summary.to = headerAddresses(fields, 'to', false, entry.charset);
    entry.summary.cc = headerAddresses(fields, 'cc', false, entry.charset);
  }
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
