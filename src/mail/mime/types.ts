/**
 * The protocol-neutral result of parsing one RFC 5322 message. It is cached as JSON (immutable per
 * message), so it holds no Buffers, Dates or streams: attachment bytes are fetched on demand with
 * extractAttachment().
 */
import type { Readable } from 'node:stream';

export interface ParsedAddress {
  /** Display name, RFC 2047 decoded; empty string when the header gave none. */
  name: string;
  /** The mailbox address; an internationalised (punycode) domain is shown in Unicode. */
  address: string;
}

export interface ParsedAttachment {
  /**
   * The IMAP body part number of the part (RFC 9051 §6.4.5, e.g. `2`, `1.3`), so it is stable for the
   * same bytes and also usable as `BODY[<id>]`. A non-multipart message whose only body is an
   * attachment is part `1`. Matches `[0-9.]+`, a subset of `[A-Za-z0-9._-]`.
   */
  id: string;
  /** RFC 2231 / RFC 2047 decoded file name, or null when the part names none. */
  filename: string | null;
  /** Lower-case MIME type without parameters (`application/octet-stream` refined from the file name). */
  contentType: string;
  /** Decoded size in bytes (transfer encoding undone): exactly what extractAttachment() streams. */
  size: number;
  /**
   * `inline` when the part says `Content-Disposition: inline`, or says nothing but is an image
   * embedded into the HTML by Content-ID; `attachment` otherwise (including unknown dispositions).
   */
  disposition: 'attachment' | 'inline';
  /** Content-ID without the angle brackets, as an HTML `cid:` URL names it (RFC 2392); null when absent. */
  contentId: string | null;
  /** Same value as `id` (the IMAP part number); kept apart so callers can tell the two roles apart. */
  partId: string;
}

export interface ParsedMessage {
  /** Message-ID with its angle brackets (`<x@y>`), or null. */
  messageId: string | null;
  subject: string | null;
  from: ParsedAddress[];
  to: ParsedAddress[];
  cc: ParsedAddress[];
  bcc: ParsedAddress[];
  replyTo: ParsedAddress[];
  /** ISO 8601 (UTC) from the Date header; null when absent or unparseable (never "now"). */
  date: string | null;
  /** First message id of In-Reply-To, with angle brackets, or null. */
  inReplyTo: string | null;
  /** Message ids of References, in order, with angle brackets. */
  references: string[];
  /** Every header line of the top-level header, in order: key lower-cased, value unfolded and decoded. */
  headers: Array<{ key: string; value: string }>;
  /** The message's own text/plain content decoded to UTF-8; null when it has none (HTML is not converted). */
  text: string | null;
  /** The HTML content decoded to UTF-8, `cid:` links left as they are; null when there is none. */
  html: string | null;
  attachments: ParsedAttachment[];
  /**
   * True when at least one attachment is a "real" one: any attachment except inline parts embedded
   * into the HTML through their Content-ID (signature logos, newsletter images). An inline part that
   * is not referenced by the HTML (e.g. a photo Apple Mail shows inline) does count.
   */
  hasAttachments: boolean;
  /** Up to ~200 characters of the text (or the HTML without tags), whitespace collapsed; null when empty. */
  preview: string | null;
}

export interface ParseOptions {
  /**
   * Largest message, in bytes, the parser will read. A longer source rejects with
   * MessageTooLargeError (the source is then drained, not destroyed). No limit when unset.
   */
  maxBytes?: number;
}

/** The decoded bytes of one attachment, streamed. */
export interface ExtractedAttachment {
  /**
   * The attachment's MIME type; for `text/*` parts the declared charset is appended
   * (`text/plain; charset=iso-8859-1`) since the bytes are served unconverted.
   */
  contentType: string;
  filename: string | null;
  /** The decoded bytes (base64 / quoted-printable undone, no charset conversion). */
  content: Readable;
  /**
   * Decoded size when known up front. The streaming extractor never knows it; use the `size`
   * of the cached ParsedAttachment, which counts the same bytes.
   */
  size?: number;
}

/** Thrown (as a rejection) by parseMessage when the source is longer than ParseOptions.maxBytes. */
export class MessageTooLargeError extends Error {
  readonly code = 'MESSAGE_TOO_LARGE';
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    super(`Message is larger than the ${maxBytes}-byte parse limit`);
    this.name = 'MessageTooLargeError';
    this.maxBytes = maxBytes;
  }
}
