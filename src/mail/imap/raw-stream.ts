/**
 * A message's exact bytes as a stream, read with partial FETCHes (`BODY.PEEK[]<start.length>`,
 * RFC 9051 §6.4.5) one chunk at a time, only when the reader wants more. So a slow downloader
 * holds at most one chunk in memory, a `Range` costs only its bytes, and PEEK leaves `\Seen` alone.
 *
 * Each chunk is fetched by `fetchChunk`, which leases a session for that FETCH alone (backend.ts):
 * between chunks, while the client is slow, no session is held. A reader that asks for nothing more
 * for `idleTimeoutMs` is ended, so a paused client cannot keep even its one buffered chunk forever.
 */
import { Readable } from 'node:stream';
import { GatewayError } from '../../errors.js';

export interface RawStreamOptions {
  /** The bytes from `start`, at most `length` of them (undefined or empty: the message is gone). */
  fetchChunk: (start: number, length: number) => Promise<Buffer | undefined>;
  /** First byte, inclusive. */
  start: number;
  /** Last byte, exclusive. */
  end: number;
  chunkBytes: number;
  idleTimeoutMs: number;
}

export function createRawStream(options: RawStreamOptions): Readable {
  const { end, chunkBytes } = options;
  let position = options.start;
  let inFlight = false;
  let idleTimer: NodeJS.Timeout | undefined;

  const stream = new Readable({
    highWaterMark: chunkBytes,
    read() {
      clearTimeout(idleTimer);
      if (inFlight) return;
      if (position >= end) {
        this.push(null);
        return;
      }
      inFlight = true;
      const length = Math.min(chunkBytes, end - position);
      options.fetchChunk(position, length).then(
        (chunk) => {
          inFlight = false;
          if (this.destroyed) return;
          if (!chunk || chunk.length === 0) {
            this.destroy(new GatewayError('UPSTREAM_ERROR', 'The message ended early or was expunged during the download'));
            return;
          }
          // A server may send more than asked for; never more than the announced length goes out.
          const bytes = chunk.length > length ? chunk.subarray(0, length) : chunk;
          position += bytes.length;
          if (position < end) {
            // Until the reader asks for more (read() clears it): if it never does, end it.
            idleTimer = setTimeout(() => this.destroy(new Error(`the client read nothing for ${options.idleTimeoutMs} ms`)), options.idleTimeoutMs);
            idleTimer.unref();
          }
          this.push(bytes);
          if (position >= end) this.push(null);
        },
        (err: unknown) => {
          inFlight = false;
          this.destroy(err instanceof Error ? err : new Error(String(err)));
        },
      );
    },
    destroy(err, callback) {
      clearTimeout(idleTimer);
      callback(err);
    },
  });
  if (options.start >= end) stream.push(null);
  return stream;
}
