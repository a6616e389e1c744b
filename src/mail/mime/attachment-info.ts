/**
 * What the API says about one attachment, read from mailparser's AttachmentStream metadata. Used
 * by both parseMessage() and extractAttachment() so the two agree on ids and types.
 */
import type { AttachmentCommon, StructuredHeader } from 'mailparser';

/**
 * The IMAP body part number (RFC 9051 §6.4.5). mailsplit numbers parts IMAP-style from the MIME
 * tree; mailparser reports `null` for a message that is not multipart, whose one body is part 1.
 */
export function attachmentId(partId: string | null): string {
  return partId || '1';
}

/** Ids this module can issue; anything else is answered "no such attachment" without parsing. */
export function isAttachmentId(id: string): boolean {
  return /^[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8}){0,99}$/.test(id);
}

/** The Content-ID as a `cid:` URL names it (RFC 2392): no angle brackets, no surrounding space. */
export function contentIdOf(attachment: AttachmentCommon): string | null {
  const cid = (attachment.cid ?? attachment.contentId ?? '').trim().replace(/^<|>$/g, '').trim();
  return cid || null;
}

export function filenameOf(attachment: AttachmentCommon): string | null {
  const name = attachment.filename?.trim();
  return name ? name : null;
}

export function contentTypeOf(attachment: AttachmentCommon): string {
  const type = attachment.contentType.trim().toLowerCase();
  return /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type) ? type : 'application/octet-stream';
}

/** The declared charset of a text part, reduced to a safe token, or null. */
export function charsetOf(attachment: AttachmentCommon): string | null {
  const header = attachment.headers.get('content-type');
  const structured = (Array.isArray(header) ? header[0] : header) as StructuredHeader | undefined;
  return safeCharset(typeof structured === 'object' && structured !== null ? structured.params?.charset : undefined);
}

/**
 * A charset as the message declares it, if it is a name a charset can have (RFC 2978 §2.3, a
 * token), else null. The sender writes it, so it may hold non-ASCII (which Node refuses in a
 * header: a 500) or `;` and quotes that would add parameters to our Content-Type.
 */
export function safeCharset(charset: unknown): string | null {
  if (typeof charset !== 'string') return null;
  const token = charset.trim();
  return /^[A-Za-z0-9][A-Za-z0-9._:+-]{0,39}$/.test(token) ? token : null;
}

/**
 * A transfer encoding as the message names it, if it is an RFC 2045 token (§6.1: `x-` names and
 * IANA ones, at most 40 characters here), else null: the sender writes it, and it goes into a
 * response header.
 */
export function safeTransferEncoding(encoding: unknown): string | null {
  if (typeof encoding !== 'string') return null;
  const token = encoding.trim().toLowerCase();
  return /^[a-z0-9][a-z0-9._+-]{0,39}$/.test(token) ? token : null;
}

/**
 * The Content-Type an attachment is served with: its type (already reduced to `type/subtype` by
 * contentTypeOf), and for text, whose bytes are served unconverted, the charset they were written in.
 * The one builder of this header from message data, for IMAP and POP3 alike.
 */
export function servedContentType(type: string, charset: unknown): string {
  const safe = type.startsWith('text/') ? safeCharset(charset) : null;
  return safe === null ? type : `${type}; charset=${safe}`;
}

/** The part's own Content-Disposition value, lower-cased; undefined when it has none. */
export function declaredDisposition(attachment: AttachmentCommon): string | undefined {
  return attachment.contentDisposition?.trim().toLowerCase() || undefined;
}
