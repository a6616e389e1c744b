/**
 * A download as a stream of partial FETCHes (`BODY.PEEK[<section>]<start.length>`, RFC 9051
 * §6.4.5), one chunk at a time, only when the reader wants more: a message's exact bytes (`/raw`,
 * section empty) or one body part's, its transfer encoding undone on the way (`decoder`). So a slow
 * downloader holds at most one chunk in memory, a `Range` costs only its bytes, and PEEK leaves
 * `\Seen` alone.
 *
 * Each chunk is fetched by `fetchChunk`, which leases a session for that FETCH alone (backend.ts):
 * between chunks, while the client is slow, no session is held. A reader that asks for nothing more
 * for `idleTimeoutMs` is ended, so a paused client cannot keep even its one buffered chunk forever.
 */
import { Readable, Transform } from 'node:stream';
import { GatewayError } from '../../errors.js';
import type { ChunkDecoder } from '../mime/transfer-decoding.js';

export interface ChunkStreamOptions {
  /**
   * The bytes from `start`, at most `length` of them; empty past the end; undefined when the server
   * answered no FETCH at all (the message is gone).
   */
  fetchChunk: (start: number, length: number) => Promise<Buffer | undefined>;
  /** First byte, inclusive. */
  start: number;
  /**
   * `'end'` (a message: RFC822.SIZE, or a Range, promised in Content-Length): exactly the bytes up
   * to `end`, exclusive; a chunk that comes back empty before it fails the stream.
   * `'short-chunk'` (a body part, whose BODYSTRUCTURE size is the server's own count, computed apart
   * from the bytes it serves): the bytes end with the first chunk shorter than asked for, and `end`
   * is only a bound: a server that keeps sending past it fails the stream rather than loop.
   */
  until: 'end' | 'short-chunk';
  end: number;
  chunkBytes: number;
  idleTimeoutMs: number;
  /** Undoes a transfer encoding across chunk boundaries; absent: the bytes go out as fetched. */
  decoder?: ChunkDecoder;
}

export function createChunkStream(options: ChunkStreamOptions): Readable {
  const { end, chunkBytes, decoder } = options;
  const open = options.until === 'short-chunk';
  let position = options.start;
  let inFlight = false;
  let idleTimer: NodeJS.Timeout | undefined;

  const finish = (): void => {
    const rest = decoder?.end();
    if (rest !== undefined && rest.length > 0) stream.push(rest);
    stream.push(null);
  };

  /** Fetches the next chunk and pushes what it decodes to; the next one when that is nothing yet. */
  const fetchNext = (): void => {
    if (position >= end) {
      if (open) stream.destroy(new GatewayError('UPSTREAM_ERROR', `The server sent more of the part than its size allows (${end} bytes)`));
      else finish();
      return;
    }
    inFlight = true;
    const length = open ? chunkBytes : Math.min(chunkBytes, end - position);
    options.fetchChunk(position, length).then(
      (chunk) => {
        inFlight = false;
        if (stream.destroyed) return;
        if (chunk === undefined || (!open && chunk.length === 0)) {
          stream.destroy(new GatewayError('UPSTREAM_ERROR', 'The message ended early or was expunged during the download'));
          return;
        }
        let bytes = chunk;
        let last = open && chunk.length < length;
        if (chunk.length > length) {
          if (!open) {
            // A server may send more than asked for; never more than the announced length goes out.
            bytes = chunk.subarray(0, length);
          } else if (position === options.start) {
            // A server that ignores the partial sends the whole part at once (imapflow's download() takes it so).
            last = true;
          } else {
            stream.destroy(new GatewayError('UPSTREAM_ERROR', 'The server answered a partial FETCH of the part with more than was asked for'));
            return;
          }
        }
        position += bytes.length;
        if (!open && position >= end) last = true;
        const out = decoder === undefined ? bytes : decoder.write(bytes);
        if (last) {
          if (out.length > 0) stream.push(out);
          finish();
          return;
        }
        // Nothing to give yet (a chunk of line breaks, an escape cut in two): the reader still waits.
        if (out.length === 0) {
          fetchNext();
          return;
        }
        // Until the reader asks for more (read() clears it): if it never does, end it.
        idleTimer = setTimeout(() => stream.destroy(new Error(`the client read nothing for ${options.idleTimeoutMs} ms`)), options.idleTimeoutMs);
        idleTimer.unref();
        stream.push(out);
      },
      (err: unknown) => {
        inFlight = false;
        stream.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  };

  const stream: Readable = new Readable({
    highWaterMark: chunkBytes,
    read() {
      clearTimeout(idleTimer);
      if (!inFlight) fetchNext();
    },
    destroy(err, callback) {
      clearTimeout(idleTimer);
      callback(err);
    },
  });
  if (!open && options.start >= end) stream.push(null);
  return stream;
}

/**
 * The first `count` bytes of `source`, then the end; the rest is read and dropped (a part whose
 * server copy carries a line break more than the parse's, body-part.ts `servesAsParsed`).
 */
export function takeFirstBytes(source: Readable, count: number): Readable {
  let left = count;
  const out = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (left > 0) {
        const kept = chunk.length <= left ? chunk : chunk.subarray(0, left);
        left -= kept.length;
        done(null, kept);
      } else done();
    },
  });
  source.once('error', (err) => out.destroy(err));
  out.once('close', () => source.destroy());
  return source.pipe(out);
}
