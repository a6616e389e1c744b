/**
 * parseMessage(): one RFC 5322 message (bytes or a stream of them) to the API's JSON shape.
 *
 * Built on mailparser's streaming MailParser rather than simpleParser: attachment bodies are
 * counted as they stream past and dropped, never buffered, so a message with a 25 MB attachment
 * costs the memory of its text, not of its attachment. Malformed input never rejects: whatever
 * could be parsed is returned. Rejections are reserved for the source failing (a broken
 * connection, so the partial result must not be cached) and for ParseOptions.maxBytes.
 */
import type { Readable } from 'node:stream';
import { MailParser } from 'mailparser';
import type { AttachmentStream, HeaderLines, Headers, MessageText, StructuredHeader } from 'mailparser';
import { attachmentId, contentIdOf, contentTypeOf, declaredDisposition, filenameOf } from './attachment-info.js';
import { parseDateHeader } from './date.js';
import { feedParser } from './feed.js';
import { addresses, decodeHeaderFields, firstField, messageIds } from './headers.js';
import { PARSE_OPTIONS } from './options.js';
import { makePreview } from './preview.js';
import { MessageTooLargeError } from './types.js';
import type { ParsedAttachment, ParsedMessage, ParseOptions } from './types.js';

export type { ParsedAddress, ParsedAttachment, ParsedMessage, ParseOptions } from './types.js';
export { MessageTooLargeError } from './types.js';

interface SeenAttachment {
  id: string;
  filename: string | null;
  contentType: string;
  size: number;
  declaredDisposition: string | undefined;
  contentId: string | null;
  /** Has a Content-ID and sits in multipart/related (mailparser's `related`). */
  related: boolean;
}

interface Collected {
  headers: Headers | undefined;
  headerLines: HeaderLines;
  attachments: SeenAttachment[];
  text: MessageText | undefined;
}

export function parseMessage(source: Buffer | Readable, options: ParseOptions = {}): Promise<ParsedMessage> {
  const parser = new MailParser(PARSE_OPTIONS);
  const collected: Collected = { headers: undefined, headerLines: [], attachments: [], text: undefined };

  return new Promise<ParsedMessage>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      feed.detach();
      outcome();
    };
    // Whatever the parser has produced so far is the answer: a malformed message is shown as far
    // as it can be read. Building the result cannot throw on message content.
    const finish = (): void => settle(() => resolve(buildResult(collected)));

    // 'error' stays subscribed for the parser's whole life: mailparser may still emit one from a
    // pending callback after we have settled, and an unhandled 'error' would crash the process.
    parser.on('error', finish);
    parser.on('headers', (headers: Headers) => {
      collected.headers = headers;
    });
    parser.on('headerLines', (lines: HeaderLines) => {
      collected.headerLines = lines;
    });
    parser.on('readable', () => {
      let data: AttachmentStream | MessageText | null;
      while (!settled && (data = parser.read()) !== null) {
        if (data.type === 'text') collected.text = data;
        else countAttachment(data, collected.attachments, finish);
      }
    });
    parser.on('end', finish);

    const feed = feedParser(source, parser, options.maxBytes, {
      onSourceError: (err) => settle(() => reject(err)),
      onLimit: () => settle(() => reject(new MessageTooLargeError(options.maxBytes ?? 0))),
    });
  }).finally(() => {
    if (!parser.destroyed) parser.destroy();
  });
}

/** Reads an attachment's content to its end, counting bytes, then lets the parser go on. */
function countAttachment(attachment: AttachmentStream, seen: SeenAttachment[], onFailure: () => void): void {
  const entry: SeenAttachment = {
    id: attachmentId(attachment.partId),
    filename: filenameOf(attachment),
    contentType: contentTypeOf(attachment),
    size: 0,
    declaredDisposition: declaredDisposition(attachment),
    contentId: contentIdOf(attachment),
    related: attachment.related === true,
  };
  seen.push(entry);
  attachment.content.on('data', (chunk: Buffer) => {
    entry.size += chunk.length;
  });
  attachment.content.once('end', () => attachment.release?.());
  attachment.content.once('error', onFailure);
}

function referencedCids(html: string | null): Set<string> {
  const cids = new Set<string>();
  if (!html) return cids;
  for (const m of html.matchAll(/\bcid:([^'"\s)>]{1,256})/gi)) {
    const raw = m[1] ?? '';
    let cid = raw;
    try {
      cid = decodeURIComponent(raw); // RFC 2392: the cid URL is %-encoded
    } catch {
      // keep the raw form
    }
    cids.add(cid.toLowerCase());
    cids.add(raw.toLowerCase());
  }
  return cids;
}

function rootCharset(headers: Headers | undefined): string | undefined {
  const value = headers?.get('content-type');
  const structured = (Array.isArray(value) ? value[0] : value) as StructuredHeader | undefined;
  const charset = typeof structured === 'object' && structured !== null ? structured.params?.charset : undefined;
  return typeof charset === 'string' ? charset : undefined;
}

function buildResult(collected: Collected): ParsedMessage {
  const charset = rootCharset(collected.headers);
  const fields = decodeHeaderFields(collected.headerLines, charset);
  const text = collected.text?.text ? collected.text.text : null;
  const html = collected.text?.html ? collected.text.html : null;
  const cids = referencedCids(html);

  const attachments: ParsedAttachment[] = [];
  let hasAttachments = false;
  for (const a of collected.attachments) {
    // Embedded: an inline resource the HTML shows by its Content-ID (a logo, a newsletter image).
    const embedded = a.contentId !== null && (a.related || cids.has(a.contentId.toLowerCase()));
    const disposition =
      a.declaredDisposition === 'inline' || (a.declaredDisposition === undefined && embedded) ? 'inline' : 'attachment';
    if (!(disposition === 'inline' && embedded)) hasAttachments = true;
    attachments.push({
      id: a.id,
      filename: a.filename,
      contentType: a.contentType,
      size: a.size,
      disposition,
      contentId: a.contentId,
      partId: a.id,
    });
  }

  const subject = firstField(fields, 'subject')?.value;
  return {
    messageId: messageIds(firstField(fields, 'message-id')?.value ?? '')[0] ?? null,
    subject: subject ? subject : null,
    from: addresses(fields, 'from', true, charset),
    to: addresses(fields, 'to', false, charset),
    cc: addresses(fields, 'cc', false, charset),
    bcc: addresses(fields, 'bcc', false, charset),
    replyTo: addresses(fields, 'reply-to', true, charset),
    date: parseDateHeader(firstField(fields, 'date')?.value),
    inReplyTo: messageIds(firstField(fields, 'in-reply-to')?.value ?? '')[0] ?? null,
    references: [...new Set(fields.filter((f) => f.key === 'references').flatMap((f) => messageIds(f.value)))],
    headers: fields.map(({ key, value }) => ({ key, value })),
    text,
    html,
    attachments,
    hasAttachments,
    preview: makePreview(text, html),
  };
}
