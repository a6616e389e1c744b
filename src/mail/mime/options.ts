/**
 * mailparser options. The ones that decide the MIME tree and what counts as an attachment are
 * shared by parseMessage() and extractAttachment(): an attachment id handed out by one must name
 * the same part in the other.
 */
import type { MailParserOptions } from 'mailparser';

const TREE_OPTIONS = {
  // A message/rfc822 part (a forwarded message, a bounce's original) stays one attachment that can
  // be downloaded as .eml. By default mailparser parses an inline-disposition embedded message into
  // the body, which hides it from the attachment list and shifts what the ids point to.
  ignoreEmbedded: true,
  // Bounces (RFC 3464): the message/delivery-status part is folded into `text`, where the reason for
  // the bounce is readable; the returned original stays an attachment through ignoreEmbedded.
  keepDeliveryStatus: false,
  // Checksums are never used, and md5 is missing on FIPS hosts (mailparser would then error).
  checksumAlgo: false,
} as const satisfies MailParserOptions;

/** For parseMessage(). */
export const PARSE_OPTIONS: MailParserOptions = {
  ...TREE_OPTIONS,
  // An HTML-only message gets a `text` converted from its HTML (html-to-text, bounded by mailparser's
  // size and nesting limits), as does an HTML part outside multipart/alternative beside a text part.
  // The HTML of a multipart/alternative is never converted: its text/plain sibling is the text.
  skipHtmlToText: false,
  // skipTextToHtml stays false: a plain-text part outside multipart/alternative (a list footer)
  // must still appear in `html`, which mailparser does by converting it.
};

/** For extractAttachment(): text bodies are irrelevant there, so skip every conversion. */
export const EXTRACT_OPTIONS: MailParserOptions = {
  ...TREE_OPTIONS,
  skipHtmlToText: true,
  skipTextToHtml: true,
  skipTextLinks: true,
};
