/**
 * Turns a send request (API.md, Sending) into the exact bytes to submit over SMTP and the SMTP
 * envelope. The JSON form is built with nodemailer's MailComposer, which does the MIME work
 * (RFC 2045-2047 headers and bodies, RFC 2231 file names); a raw message/rfc822 body is passed
 * through byte for byte except for its Bcc fields. No I/O of its own: stored messages come in
 * through `ComposeSources`.
 */
import { randomBytes } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { Readable } from 'node:stream';
import MailComposer, { type MailComposerAttachment, type MailComposerOptions } from 'nodemailer/lib/mail-composer';
import addressparser from 'nodemailer/lib/addressparser';
import { GatewayError } from '../errors.js';
import { decodedBase64 } from '../util/streamed-json.js';
import type { Address } from '../mail/types.js';
import { forwardFileName, forwardSubject, originalFlag, replyRecipients, replySubject, threadingHeaders } from './threading.js';

export interface AddressInput {
  name?: string;
  address: string;
}

export type AttachmentInput =
  | { filename?: string; contentType?: string; content: string /* base64 */ }
  | { mailbox: string; id: string; attachmentId: string };

export interface SendBody {
  from?: AddressInput;
  to?: AddressInput[];
  cc?: AddressInput[];
  bcc?: AddressInput[];
  replyTo?: AddressInput[];
  subject?: string;
  text?: string;
  html?: string;
  headers?: Record<string, string>;
  attachments?: AttachmentInput[];
  reference?: { mailbox: string; id: string; action: 'reply' | 'replyAll' | 'forward' };
  saveToSent?: boolean;
}

/** What compose needs from the mail layer (the caller wires these to MailService). */
export interface ComposeSources {
  /** The referenced message's headers, as parsed: Message-ID `<…>` (or null), References (array of `<…>`), Subject, From, Reply-To, To, Cc. Throws the mail layer's GatewayError (MESSAGE_NOT_FOUND etc.) itself. */
  original(mailbox: string, id: string): Promise<OriginalMessage>;
  /** The raw bytes of a stored message (for forward, attached as message/rfc822). */
  raw(mailbox: string, id: string): Promise<Buffer>;
  /** One attachment of a stored message, decoded. */
  attachment(mailbox: string, id: string, attachmentId: string): Promise<{ filename: string | null; contentType: string; content: Buffer }>;
}

export interface OriginalMessage {
  messageId: string | null;
  references: string[];
  subject: string | null;
  from: Address[];
  replyTo: Address[];
  to: Address[];
  cc: Address[];
}

export interface ComposedMessage {
  /**
   * Exactly what is sent (no Bcc header): the raw form's bytes, or the JSON form's as MailComposer
   * produces them, read once (so that a large attachment is not held whole a second time).
   */
  raw: Buffer | Readable;
  /** `to` = unique bare addresses of to+cc+bcc, order kept. */
  envelope: { from: string; to: string[] };
  /** `<…>` */
  messageId: string;
  /** Set when reference was given: what to mark on the original after acceptance. */
  markOriginal?: { mailbox: string; id: string; flag: '\\Answered' | '$Forwarded' };
}

export interface ComposeOptions {
  /** The account's own address. */
  accountEmail: string | null;
  /** Right side of generated Message-IDs. */
  messageIdDomain: string;
}

function invalid(detail: string): GatewayError {
  return new GatewayError('VALIDATION_FAILED', detail);
}

// ---------------------------------------------------------------------------------------------
// Addresses

// RFC 5322 §3.2.3 atext, widened to UTF-8 by RFC 6532 §3.2 (an SMTPUTF8 local part).
const DOT_ATOM_LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10ffff}-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10ffff}-]+)*$/u;
// RFC 5322 §3.2.4 quoted-string without folding white space: qtext / SP / quoted-pair.
const QUOTED_LOCAL = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10ffff}]|\\[\x20-\x7e])+"$/u;
// RFC 5321 §4.1.3 address literal, loosely: [ dtext ] (RFC 5322 §3.4.1).
const DOMAIN_LITERAL = /^\[[\x21-\x5a\x5e-\x7e]+\]$/;
// RFC 1035 §2.3.1 / RFC 5890 A-label: letters, digits, hyphens inside.
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * True for one addr-spec (RFC 5322 §3.4.1): a dot-atom or quoted local part of at most 64 octets
 * (RFC 5321 §4.5.3.1.1), `@`, and a host name (IDN allowed: it must convert to A-labels, RFC 5891)
 * or an address literal. No display name, no angle brackets, no CR/LF, no second address.
 */
export function isEmailAddress(value: string): boolean {
  if (value.length > 320 || /[\r\n]/.test(value)) return false;
  const at = value.endsWith(']') ? value.lastIndexOf('@[') : value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1) return false;
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (Buffer.byteLength(local) > 64) return false;
  if (!DOT_ATOM_LOCAL.test(local) && !QUOTED_LOCAL.test(local)) return false;
  if (DOMAIN_LITERAL.test(domain)) return true;
  const ascii = domainToASCII(domain);
  if (ascii === '' || ascii.length > 253) return false;
  return ascii.split('.').every((label) => LDH_LABEL.test(label));
}

/** Checks one address of the body; `field` is its JSON path, e.g. `body/cc/1`. */
function checkAddress(input: AddressInput, field: string): Address {
  if (typeof input.address !== 'string' || !isEmailAddress(input.address.trim())) {
    throw invalid(`${field}/address is not an email address`);
  }
  const name = input.name ?? '';
  if (/[\r\n]/.test(name)) throw invalid(`${field}/name must not contain CR or LF`);
  // A fresh object: MimeNode rewrites the address objects it is given (punycode), and the
  // request's own must stay as they were.
  return { name, address: input.address.trim() };
}

function checkAddresses(list: AddressInput[] | undefined, field: string): Address[] | undefined {
  return list?.map((entry, i) => checkAddress(entry, `${field}/${i}`));
}

/**
 * The address as given to SMTP: an IDN domain as A-labels (RFC 5891) when the local part is ASCII,
 * so no SMTPUTF8 is needed for it (what MimeNode does for the composed form). A non-ASCII local
 * part needs SMTPUTF8 (RFC 6531) anyway and is kept as it is.
 */
function envelopeAddress(address: string): string {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  // eslint-disable-next-line no-control-regex
  if (at < 0 || /[^\x00-\x7f]/.test(local) || !/[^\x00-\x7f]/.test(domain)) return address;
  return `${local}@${domainToASCII(domain) || domain}`;
}

/** Keeps the first of addresses equal case-insensitively, in order. */
function uniqueBare(addresses: Iterable<string>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const address of addresses) {
    const key = address.toLowerCase();
    if (address === '' || seen.has(key)) continue;
    seen.add(key);
    out.push(address);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Headers and attachments

/** RFC 5322 §3.6.8 field-name: printable US-ASCII except ":". */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * Fields the gateway writes itself. A custom one would either be replaced silently by MailComposer
 * (which sets these after the custom headers) or contradict the MIME structure. Reply-To is here
 * because `body/replyTo` sets it (and validates its addresses).
 */
const STRUCTURAL_FIELDS = new Set([
  'from',
  'to',
  'cc',
  'bcc',
  'reply-to',
  'subject',
  'message-id',
  'date',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'in-reply-to',
  'references',
]);

function checkHeaders(headers: Record<string, string> | undefined): Record<string, string> | undefined {
  if (headers === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!FIELD_NAME.test(name)) throw invalid(`body/headers/${name} is not a header field name (RFC 5322 §3.6.8: printable ASCII without ":")`);
    if (STRUCTURAL_FIELDS.has(name.toLowerCase())) {
      throw invalid(`body/headers/${name} is set by the gateway and cannot be given in headers; use the body's own fields`);
    }
    if (typeof value !== 'string') throw invalid(`body/headers/${name} must be a string`);
    // A line break would end the field and start one of the caller's own (header injection).
    if (/[\r\n]/.test(value)) throw invalid(`body/headers/${name} must not contain CR or LF`);
    out[name] = value;
  }
  return out;
}

/**
 * True when `content` is base64 (RFC 4648 §4, or the URL-safe alphabet of §5, which Node decodes
 * alike), with optional padding and MIME-style line breaks or spaces. Checked before decoding
 * because Buffer.from(…, 'base64') silently skips whatever is not base64.
 */
function isBase64(content: string): boolean {
  if (!/^[A-Za-z0-9+/_\-\s]*(?:=\s*){0,2}$/.test(content)) return false;
  // Only measure without white space when there is some: a 10 MB attachment is not copied for it.
  const compact = /\s/.test(content) ? content.replace(/\s+/g, '') : content;
  const padded = compact.endsWith('=');
  return padded ? compact.length % 4 === 0 : compact.length % 4 !== 1;
}

// RFC 2045 §5.1: type "/" subtype (tokens), then optional parameters.
const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+\s*(?:;.*)?$/;

function checkAttachments(attachments: AttachmentInput[] | undefined): void {
  attachments?.forEach((attachment, i) => {
    if (!('content' in attachment)) return;
    // Content decoded while a large body was read was checked then (src/util/streamed-json.ts).
    const decoded = decodedBase64(attachment, 'content') !== undefined;
    if (!decoded && (typeof attachment.content !== 'string' || !isBase64(attachment.content))) throw invalid(`body/attachments/${i}/content is not base64`);
    // eslint-disable-next-line no-control-regex
    if (attachment.filename !== undefined && /[\u0000-\u001f\u007f]/.test(attachment.filename)) {
      throw invalid(`body/attachments/${i}/filename must not contain control characters`);
    }
    if (attachment.contentType !== undefined && (!MEDIA_TYPE.test(attachment.contentType) || /[\r\n]/.test(attachment.contentType))) {
      throw invalid(`body/attachments/${i}/contentType is not a media type (type/subtype, RFC 2045 §5.1)`);
    }
  });
}

/**
 * An inline attachment's bytes: decoded from its base64 here, or, when the body was large, the
 * pieces decoded while it was read, handed to MailComposer as a stream that lets each piece go once
 * it is encoded (so the attachment is not held whole while the message is written out).
 */
function inlineContent(attachment: { content: string }): Buffer | Readable {
  const pieces = decodedBase64(attachment, 'content');
  if (pieces === undefined) return Buffer.from(attachment.content, 'base64');
  return Readable.from(
    (function* (): Generator<Buffer> {
      for (let piece = pieces.shift(); piece !== undefined; piece = pieces.shift()) yield piece;
    })(),
  );
}

/** Normalises line breaks to CRLF (RFC 5322 §2.3) so the bytes stored in \Sent are the bytes sent. */
function crlf(text: string): string {
  return text.replace(/\r\n|\r|\n/g, '\r\n');
}

/** `<random@domain>`: 128 random bits, base64url, which is dot-atom-text (RFC 5322 §3.6.4). */
export function generateMessageId(domain: string): string {
  return `<${randomBytes(16).toString('base64url')}@${domain}>`;
}

// ---------------------------------------------------------------------------------------------
// The JSON form

export async function composeMessage(body: SendBody, sources: ComposeSources, options: ComposeOptions): Promise<ComposedMessage> {
  const fromInput = body.from ?? (options.accountEmail ? { address: options.accountEmail } : undefined);
  if (fromInput === undefined) {
    throw invalid('body/from is required: this account has no email address (set "email" on the account, or give body/from)');
  }
  const from = checkAddress(fromInput, 'body/from');
  let to = checkAddresses(body.to, 'body/to');
  let cc = checkAddresses(body.cc, 'body/cc');
  const bcc = checkAddresses(body.bcc, 'body/bcc') ?? [];
  const replyTo = checkAddresses(body.replyTo, 'body/replyTo');
  const headers = checkHeaders(body.headers);
  checkAttachments(body.attachments);

  const reference = body.reference;
  let subject = body.subject;
  let inReplyTo: string | undefined;
  let references: string[] = [];
  let forwarded: MailComposerAttachment | undefined;
  let markOriginal: ComposedMessage['markOriginal'];

  if (reference) {
    const original = await sources.original(reference.mailbox, reference.id);
    ({ inReplyTo, references } = threadingHeaders(original));
    if (reference.action === 'forward') {
      subject ??= forwardSubject(original.subject);
      const originalRaw = await sources.raw(reference.mailbox, reference.id);
      forwarded = {
        filename: forwardFileName(original.subject),
        contentType: 'message/rfc822',
        // MailComposer makes message/* parts inline; as an attachment the original is listed and
        // saved as a file by clients. Its bytes go in as they are: RFC 2046 §5.2.1 forbids encoding
        // a message/rfc822 body, so MailComposer labels it 7bit or 8bit and copies it unchanged.
        contentDisposition: 'attachment',
        content: originalRaw,
      };
    } else {
      subject ??= replySubject(original.subject);
      if (to === undefined) {
        const ownAddresses = [options.accountEmail ?? '', from.address];
        const defaults = replyRecipients(original, reference.action, ownAddresses, (a) => isEmailAddress(a.address.trim()));
        to = defaults.to;
        // The body's cc, when given, is taken as it is; else reply-all copies the original's Cc.
        cc ??= defaults.cc;
      }
    }
    markOriginal = { mailbox: reference.mailbox, id: reference.id, flag: originalFlag(reference.action) };
  }

  if ((to?.length ?? 0) + (cc?.length ?? 0) + bcc.length === 0) {
    throw invalid(
      reference && reference.action !== 'forward' && body.to === undefined
        ? 'body/to is required: the original message has no recipient to reply to other than this account'
        : 'body/to is required: give at least one recipient in body/to, body/cc or body/bcc',
    );
  }

  // One Buffer per attachment: base64 is decoded once here, then MailComposer streams it through
  // its base64 encoder into the output. Loaded one after another to hold one source read at a time.
  const attachments: MailComposerAttachment[] = forwarded ? [forwarded] : [];
  for (const attachment of body.attachments ?? []) {
    if ('content' in attachment) {
      attachments.push({
        ...(attachment.filename !== undefined && { filename: attachment.filename }),
        ...(attachment.contentType !== undefined && { contentType: attachment.contentType }),
        contentDisposition: 'attachment',
        content: inlineContent(attachment),
      });
    } else {
      const loaded = await sources.attachment(attachment.mailbox, attachment.id, attachment.attachmentId);
      attachments.push({
        ...(loaded.filename !== null && { filename: loaded.filename }),
        contentType: loaded.contentType,
        contentDisposition: 'attachment',
        content: loaded.content,
      });
    }
  }

  // A message with a subject only (no text, html, attachments or reference) is legal: RFC 5322 §3.5
  // makes the body optional, so it goes out as an empty text/plain body rather than being refused.
  // With attachments but no text or html, an empty text part is added anyway so the message is a
  // multipart/mixed rather than the lone attachment as the whole message, which clients show badly.
  // (An empty Buffer is what MailComposer takes as "a text part"; an empty string it skips.)
  const text = body.text !== undefined && body.text !== '' ? crlf(body.text) : undefined;
  const html = body.html !== undefined && body.html !== '' ? crlf(body.html) : undefined;

  const messageId = generateMessageId(options.messageIdDomain);
  const mail: MailComposerOptions = {
    from,
    ...(to !== undefined && to.length > 0 && { to }),
    ...(cc !== undefined && cc.length > 0 && { cc }),
    ...(bcc.length > 0 && { bcc }),
    ...(replyTo !== undefined && replyTo.length > 0 && { replyTo }),
    ...(subject !== undefined && { subject }),
    ...(inReplyTo !== undefined && { inReplyTo }),
    ...(references.length > 0 && { references }),
    messageId,
    date: new Date(),
    ...(text !== undefined ? { text } : html === undefined && attachments.length > 0 ? { text: Buffer.alloc(0) } : {}),
    ...(html !== undefined && { html }),
    ...(attachments.length > 0 && { attachments }),
    ...(headers !== undefined && { headers }),
    // Content is always given in memory: never let a value reach MailComposer's file or URL loaders.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  const root = new MailComposer(mail).compile();
  // The envelope comes from the tree so its addresses are the ones in the headers (IDN domains as
  // A-labels when the local part is ASCII). The root keeps its Bcc for getEnvelope and leaves it
  // out of the built bytes (MimeNode keepBcc is false by default).
  const envelope = root.getEnvelope();
  return {
    raw: root.createReadStream(),
    envelope: { from: envelope.from || from.address, to: uniqueBare(envelope.to) },
    messageId,
    ...(markOriginal && { markOriginal }),
  };
}

// ---------------------------------------------------------------------------------------------
// The raw form

interface RawField {
  /** Lower-cased field name. */
  name: string;
  /** Byte offsets of the field in the message, its continuation lines and final line break included. */
  start: number;
  end: number;
  /** Unfolded value (RFC 5322 §2.2.3), UTF-8 decoded (RFC 6532). */
  value: string;
}

// RFC 5322 §3.6.8 field-name, then the obsolete white space before the colon (§4.5.3).
const FIELD_LINE = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

const notAMessage = (why: string): GatewayError => invalid(`body is not an RFC 5322 message: ${why}`);

/**
 * Splits the header block (up to the first empty line, CRLF or bare LF) into fields without
 * looking at the body. A line that is neither a field nor a continuation after the first one is
 * kept as a nameless field, so it is copied like anything else.
 */
function parseHeaderBlock(raw: Buffer): { fields: RawField[]; lineBreak: string } {
  const fields: RawField[] = [];
  let lineBreak = '\r\n';
  let pos = 0;
  for (;;) {
    const lf = raw.indexOf(0x0a, pos);
    if (lf < 0) throw notAMessage('no empty line ends the header block');
    const lineEnd = lf > pos && raw[lf - 1] === 0x0d ? lf - 1 : lf;
    if (lineEnd === pos) {
      if (fields.length === 0) throw notAMessage('it starts with an empty line, not a header field');
      return { fields, lineBreak };
    }
    const line = raw.toString('latin1', pos, lineEnd);
    const last = fields[fields.length - 1];
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (!last) throw notAMessage('the first line is not a header field');
      last.end = lf + 1;
    } else {
      const match = FIELD_LINE.exec(line);
      if (!match && fields.length === 0) throw notAMessage('the first line is not a header field');
      if (fields.length === 0 && lineEnd === lf) lineBreak = '\n';
      fields.push({ name: match ? (match[1] ?? '').toLowerCase() : '', start: pos, end: lf + 1, value: '' });
    }
    pos = lf + 1;
  }
}

function fieldValue(raw: Buffer, field: RawField): string {
  const text = raw.toString('utf8', field.start, field.end);
  // Unfold: a line break followed by white space is removed, the white space kept (RFC 5322 §2.2.3).
  return text
    .slice(text.indexOf(':') + 1)
    .replace(/\r?\n(?=[ \t])/g, '')
    .replace(/\r?\n$/, '')
    .trim();
}

/**
 * Every mailbox of an address field, groups opened (RFC 5322 §3.4), in order; undefined when one of
 * them is not an email address (addressparser reads a bare word such as `bob` as a name without
 * an address: that is refused rather than silently dropped).
 */
function fieldAddresses(value: string): string[] | undefined {
  const out: string[] = [];
  for (const { address } of addressparser(value, { flatten: true })) {
    if (!isEmailAddress(address.trim())) return undefined;
    out.push(address.trim());
  }
  return out;
}

function overrideAddresses(list: string[] | undefined, field: string): string[] {
  const out: string[] = [];
  (list ?? []).forEach((entry, i) => {
    // A query value may be `Name <a@b>` or a comma-separated list: take the mailboxes it names.
    const parsed = fieldAddresses(entry);
    if (parsed === undefined || parsed.length === 0) throw invalid(`querystring/${field}/${i} is not an email address`);
    out.push(...parsed);
  });
  return out;
}

/** The mailboxes of every `label` field (From, To, Cc, Bcc) of the header block. */
function headerAddresses(fields: ReadonlyArray<RawField>, label: 'From' | 'To' | 'Cc' | 'Bcc'): string[] {
  const name = label.toLowerCase();
  return fields
    .filter((f) => f.name === name)
    .flatMap((f) => {
      const parsed = fieldAddresses(f.value);
      if (parsed === undefined) throw invalid(`body: the ${label} field ${JSON.stringify(f.value)} names a mailbox that is not an email address`);
      return parsed;
    });
}

/**
 * A message/rfc822 body "sent as it is" (API.md, Sending). Only the header block is read: the
 * envelope comes from From (else the account's address) and To/Cc/Bcc, unless `override` gives
 * recipients (then only those). Every Bcc field is cut out, folded lines included (RFC 5322
 * §3.6.3: Bcc recipients must not be disclosed); every other byte is kept.
 */
export function prepareRawMessage(raw: Buffer, override: { to?: string[]; cc?: string[]; bcc?: string[] }, options: ComposeOptions): ComposedMessage & { raw: Buffer } {
  const { fields, lineBreak } = parseHeaderBlock(raw);
  for (const field of fields) field.value = field.name === '' ? '' : fieldValue(raw, field);
  const fromHeader = headerAddresses(fields, 'From')[0];
  const envelopeFrom = fromHeader === undefined ? options.accountEmail : envelopeAddress(fromHeader);
  if (!envelopeFrom) throw invalid('body has no From address and this account has no email address (set "email" on the account)');

  let recipients: string[];
  if (override.to !== undefined || override.cc !== undefined || override.bcc !== undefined) {
    recipients = [...overrideAddresses(override.to, 'to'), ...overrideAddresses(override.cc, 'cc'), ...overrideAddresses(override.bcc, 'bcc')];
  } else {
    recipients = [...headerAddresses(fields, 'To'), ...headerAddresses(fields, 'Cc'), ...headerAddresses(fields, 'Bcc')];
  }
  recipients = uniqueBare(recipients.map(envelopeAddress));
  if (recipients.length === 0) {
    throw invalid('to is required: the message has no To, Cc or Bcc recipient and no to, cc or bcc query parameter was given');
  }

  // A Message-ID field with no value is useless for threading and the API's messageId: it is
  // dropped and replaced like a missing one (RFC 5322 §3.6 allows one Message-ID field at most, so
  // adding a second would be wrong too). The only change besides Bcc and an added Message-ID.
  const messageIdField = fields.find((f) => f.name === 'message-id' && f.value !== '');
  const drop = fields.filter((f) => f.name === 'bcc' || (f.name === 'message-id' && f.value === ''));
  let messageId: string;
  let prefix: Buffer | undefined;
  if (messageIdField) {
    // The header is not rewritten; a value without angle brackets is reported wrapped in them.
    const value = messageIdField.value;
    messageId = /<[^<>]*>/.exec(value)?.[0] ?? `<${value}>`;
  } else {
    // RFC 5322 §3.6.4 says a message SHOULD have a Message-ID, and the API answers one, so one is
    // added as the first field, with the message's own line break. The rest stays byte for byte.
    messageId = generateMessageId(options.messageIdDomain);
    prefix = Buffer.from(`Message-ID: ${messageId}${lineBreak}`, 'latin1');
  }

  let out = raw;
  if (prefix !== undefined || drop.length > 0) {
    const parts: Buffer[] = prefix ? [prefix] : [];
    let pos = 0;
    for (const field of drop) {
      parts.push(raw.subarray(pos, field.start));
      pos = field.end;
    }
    parts.push(raw.subarray(pos));
    out = Buffer.concat(parts);
  }
  return { raw: out, envelope: { from: envelopeFrom, to: recipients }, messageId };
}
