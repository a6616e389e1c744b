/**
 * Writes a message source into a parser with backpressure, counting bytes; through the structure
 * repairs (repairs.ts), so that every parse of a message sees the same parts.
 *
 * The caller owns a Readable source: it is never destroyed here. When parsing stops early the
 * feed detaches and drains the rest (resume() with no listener), so the protocol session that
 * produces the stream (a POP3 RETR, an IMAP FETCH) can read its terminator and stay usable.
 */
import type { Readable, Writable } from 'node:stream';
import { MimeRepairs } from './repairs.js';

export interface FeedHandlers {
  /** The source emitted 'error' (a broken connection): not the message's fault. */
  onSourceError(err: Error): void;
  /** The source went past maxBytes; feeding has stopped already. */
  onLimit(): void;
}

export interface Feed {
  /** Stops writing into the parser and drains what is left of the source. Idempotent. */
  detach(): void;
}

export function feedParser(
  source: Buffer | Readable,
  parser: Writable,
  maxBytes: number | undefined,
  handlers: FeedHandlers,
): Feed {
  const repairs = new MimeRepairs();
  if (Buffer.isBuffer(source)) {
    if (maxBytes !== undefined && source.length > maxBytes) {
      queueMicrotask(() => handlers.onLimit());
    } else {
      parser.write(repairs.push(source));
      parser.end(repairs.end());
    }
    return { detach() {} };
  }

  const stream: Readable = source;
  let attached = true;
  let bytesRead = 0;

  const onData = (chunk: unknown): void => {
    if (!attached) return;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), 'utf8');
    bytesRead += buf.length;
    if (maxBytes !== undefined && bytesRead > maxBytes) {
      detach();
      handlers.onLimit();
      return;
    }
    const out = repairs.push(buf);
    if (out.length > 0 && !parser.write(out)) {
      stream.pause();
      parser.once('drain', onDrain);
    }
  };
  const onDrain = (): void => {
    if (attached) stream.resume();
  };
  const onEnd = (): void => {
    if (attached) {
      detachListeners();
      parser.end(repairs.end());
    }
  };
  const onError = (err: Error): void => {
    if (attached) {
      detachListeners();
      handlers.onSourceError(err);
    }
  };
  const onClose = (): void => {
    // 'close' without 'end': the producer was destroyed midway, so the message is incomplete.
    if (attached && !stream.readableEnded) onError(stream.errored ?? new Error('Message source closed before its end'));
  };
  // Kept after detaching: an error while draining must not become an uncaught exception.
  const ignoreError = (): void => {};

  function detachListeners(): void {
    attached = false;
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('error', onError);
    stream.off('close', onClose);
    parser.off('drain', onDrain);
  }

  function detach(): void {
    if (!attached) return;
    detachListeners();
    stream.on('error', ignoreError);
    stream.resume();
  }

  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.on('close', onClose);
  if (stream.readableEnded) onEnd();
  else if (stream.destroyed) queueMicrotask(onClose);
  else stream.resume();

  return { detach };
}
