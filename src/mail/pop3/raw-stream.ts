/**
 * The bytes of a RETR stream cut to a byte range, with the size LIST announced enforced.
 *
 * POP3 has no partial fetch: a `Range` is served by reading RETR from the start, skipping the bytes
 * before the range and stopping after it. Once the range is sent the RETR stream is destroyed, which
 * tells the client to drop the rest (the backend then drains it or drops the session).
 *
 * `Content-Length` went out from LIST's size (RFC 1939 §5 makes it the exact size), so a server that
 * sends more or fewer bytes is caught: the response is aborted with UPSTREAM_ERROR rather than ending
 * short or carrying bytes past the length the client was told.
 *
 * One difference is expected and dropped: a message whose last line has no line end cannot cross the
 * wire as it is (every line of a multi-line answer ends in CRLF, RFC 1939 §3), so the server adds a
 * CRLF after it; Dovecot's LIST size, like the stored message, does not count it. Exactly two bytes
 * past the announced size that are CRLF and end the answer are that added line end.
 */
import { Readable } from 'node:stream';
import { GatewayError } from '../../errors.js';
import type { ByteRange } from '../types.js';

const ADDED_LINE_END = Buffer.from('\r\n');

export function sliceMessage(source: Readable, range: ByteRange, size: number, highWaterMark = 256 * 1024): Readable {
  let position = 0;
  let complete = false;
  /** Bytes past `size` (at most an added CRLF; anything more is a mismatch). */
  let beyond = Buffer.alloc(0);
  const sizeMismatch = (): GatewayError =>
    new GatewayError('UPSTREAM_ERROR', `The mail server sent a message of another size than the ${size} bytes LIST announced`);

  const out = new Readable({
    highWaterMark,
    read() {
      if (!complete) source.resume();
    },
    destroy(err, callback) {
      if (!source.destroyed) source.destroy();
      callback(err);
    },
  });

  const onData = (data: Buffer): void => {
    let chunk = data;
    const chunkStart = position;
    position += chunk.length;
    if (position > size) {
      beyond = Buffer.concat([beyond, chunk.subarray(Math.max(0, size - chunkStart))]);
      if (beyond.length > ADDED_LINE_END.length) {
        stop();
        out.destroy(sizeMismatch());
        return;
      }
      chunk = chunk.subarray(0, Math.max(0, size - chunkStart));
      position = chunkStart + chunk.length;
    }
    const from = Math.max(range.start, chunkStart);
    const to = Math.min(range.end, position);
    const wanted = to > from ? chunk.subarray(from - chunkStart, to - chunkStart) : null;
    const more = wanted === null ? true : out.push(wanted);
    if (position >= range.end && range.end < size) {
      // The range is sent; the rest of the message is not wanted.
      stop();
      out.push(null);
      source.destroy();
      return;
    }
    if (!more) source.pause();
  };
  const onEnd = (): void => {
    if (complete) return;
    stop();
    if (position !== size || (beyond.length > 0 && !beyond.equals(ADDED_LINE_END))) out.destroy(sizeMismatch());
    else out.push(null);
  };
  const onError = (err: Error): void => {
    if (complete) return;
    stop();
    out.destroy(err);
  };
  const onClose = (): void => {
    if (complete) return;
    stop();
    out.destroy(new GatewayError('UPSTREAM_ERROR', 'The message stream ended before the message did'));
  };
  function stop(): void {
    complete = true;
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('close', onClose);
    // An error after we stopped (a drained rest failing) must not go unhandled.
    source.off('error', onError);
    source.on('error', () => undefined);
  }

  source.on('data', onData);
  source.on('end', onEnd);
  source.on('error', onError);
  source.on('close', onClose);
  if (range.start >= range.end && range.end < size) {
    stop();
    out.push(null);
    source.destroy();
  }
  return out;
}
