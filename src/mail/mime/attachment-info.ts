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
  const charset = typeof structured === 'object' && structured !== null ? structured.params?.charset : undefined;
  if (typeof charset !== 'string') return null;
  const token = charset.trim();
  return /^[A-Za-z0-9][A-Za-z0-9._:+-]{0,39}$/.test(token) ? token : null;
}

/** The part's own Content-Disposition value, lower-cased; undefined when it has none. */
export function declaredDisposition(attachment: AttachmentCommon): string | undefined {
  return attachment.contentDisposition?.trim().toLowerCase() || undefined;
}
