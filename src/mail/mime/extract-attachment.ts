/**
 * extractAttachment(): the decoded bytes of one attachment of a message, streamed.
 *
 * Uses mailparser's streaming MailParser with the same tree options as parseMessage(), so an id
 * from ParsedMessage.attachments names the same part here. Backpressure runs from the returned
 * stream back to the source: MailParser waits for an attachment to be read and release()d before
 * it goes on, so a 25 MB attachment is never held whole. Other attachments stream past and are
 * discarded. Once the wanted part has been read the parser stops; the rest of a Readable source
 * is drained, never destroyed (the caller owns it).
 */
import { PassThrough } from 'node:stream';
import type { Readable } from 'node:stream';
import { MailParser } from 'mailparser';
import type { AttachmentStream, MessageText } from 'mailparser';
import { attachmentId, charsetOf, contentTypeOf, filenameOf, isAttachmentId, servedContentType } from './attachment-info.js';
import { feedParser } from './feed.js';
import { EXTRACT_OPTIONS } from './options.js';
import type { ExtractedAttachment } from './types.js';

export type { ExtractedAttachment } from './types.js';

/**
 * Resolves with the attachment whose id (IMAP part number) is `attachmentId`, or null when the
 * message has no such attachment. Text parts of the body are not attachments and give null.
 * Rejects only when the source itself fails before the attachment was found; a failure while the
 * attachment streams destroys `content` with that error.
 */
export function extractAttachment(source: Buffer | Readable, attachmentId: string): Promise<ExtractedAttachment | null> {
  if (!isAttachmentId(attachmentId)) {
    drain(source);
    return Promise.resolve(null);
  }
  const wanted = attachmentId;
  const parser = new MailParser(EXTRACT_OPTIONS);

  return new Promise<ExtractedAttachment | null>((resolve, reject) => {
    let found = false;
    let done = false;
    let out: PassThrough | undefined;

    // Stops everything: detaches from the source (draining it) and destroys the parser.
    const stop = (): void => {
      if (done) return;
      done = true;
      feed.detach();
      parser.destroy();
    };

    // Subscribed for the parser's whole life, see parseMessage.
    parser.on('error', (err: Error) => {
      if (!found) resolve(null); // the message ends in garbage before the part: there is no such attachment
      else out?.destroy(err);
      stop();
    });
    parser.on('end', () => {
      if (!found) resolve(null);
      stop();
    });
    parser.on('readable', () => {
      let data: AttachmentStream | MessageText | null;
      while (!done && (data = parser.read()) !== null) {
        if (data.type !== 'attachment') continue;
        if (!found && partIdMatches(data, wanted)) {
          found = true;
          out = deliver(data, stop);
          resolve({ contentType: servedContentType(contentTypeOf(data), charsetOf(data)), filename: filenameOf(data), content: out });
        } else {
          skip(data);
        }
      }
    });

    const feed = feedParser(source, parser, undefined, {
      onSourceError: (err) => {
        if (!found) reject(err);
        else out?.destroy(err);
        stop();
      },
      onLimit: () => {},
    });
  });
}

function partIdMatches(attachment: AttachmentStream, wanted: string): boolean {
  return attachmentId(attachment.partId) === wanted;
}

/** Pipes the part's decoded content out; releases the parser and stops once it is read (or abandoned). */
function deliver(attachment: AttachmentStream, stop: () => void): PassThrough {
  const out = new PassThrough();
  const content = attachment.content;
  content.pipe(out);
  content.once('end', () => {
    attachment.release?.();
    stop();
  });
  content.once('error', (err: Error) => {
    out.destroy(err);
    stop();
  });
  // The consumer went away (an HTTP client disconnected): nothing else is wanted from this message.
  out.once('close', () => {
    if (!out.writableFinished) {
      content.unpipe(out);
      stop();
    }
  });
  return out;
}

/** An attachment that is not the one asked for: read it into nothing so the parser can go on. */
function skip(attachment: AttachmentStream): void {
  attachment.content.once('end', () => attachment.release?.());
  attachment.content.on('error', () => {});
  attachment.content.resume();
}


function drain(source: Buffer | Readable): void {
  if (!Buffer.isBuffer(source)) {
    source.on('error', () => {});
    source.resume();
  }
}
