/**
 * A message's exact bytes as a stream, read with partial FETCHes (`BODY.PEEK[]<start.length>`,
 * RFC 9051 §6.4.5) one chunk at a time, only when the reader wants more. So a slow downloader
 * holds at most one chunk in memory, a `Range` costs only its bytes, and PEEK leaves `\Seen` alone.
 */
import { Readable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { withDeadline } from '../../util/deadline.js';

export interface RawStreamOptions {
  client: ImapFlow;
  uid: number;
  /** First byte, inclusive. */
  start: number;
  /** Last byte, exclusive. */
  end: number;
  chunkBytes: number;
  timeoutMs: number;
  /** Runs once, when the stream has ended, failed or was destroyed and no FETCH is in flight. */
  onSettled: (err: Error | null) => void;
}

export function createRawStream(options: RawStreamOptions): Readable {
  const { client, uid, end, chunkBytes } = options;
  let position = options.start;
  let inFlight: Promise<void> | null = null;
  let settled = false;
  const settle = (err: Error | null): void => {
    if (settled) return;
    settled = true;
    options.onSettled(err);
  };

  const readChunk = async (stream: Readable): Promise<void> => {
    const length = Math.min(chunkBytes, end - position);
    const fetched = await withDeadline(
      client.fetchOne(String(uid), { source: { start: position, maxLength: length } }, { uid: true }),
      options.timeoutMs,
      () => client.close(),
    );
    const chunk = fetched ? fetched.source : undefined;
    if (!chunk || chunk.length === 0) {
      throw new GatewayError('UPSTREAM_ERROR', 'The message ended early or was expunged during the download');
    }
    // A server may send more than asked for; never more than the announced length goes out.
    const bytes = chunk.length > length ? chunk.subarray(0, length) : chunk;
    position += bytes.length;
    stream.push(bytes);
    if (position >= end) stream.push(null);
  };

  const stream = new Readable({
    highWaterMark: chunkBytes,
    read() {
      if (inFlight !== null || settled) return;
      if (position >= end) {
        this.push(null);
        return;
      }
      inFlight = readChunk(this).then(
        () => {
          inFlight = null;
        },
        (err: unknown) => {
          inFlight = null;
          this.destroy(err instanceof Error ? err : new Error(String(err)));
        },
      );
    },
    destroy(err, callback) {
      // Return the session only once the FETCH in flight (if any) is over.
      const pending = inFlight ?? Promise.resolve();
      void pending.finally(() => settle(err ?? (position < end ? new Error('aborted') : null)));
      callback(err);
    },
  });
  stream.on('end', () => settle(null));
  if (options.start >= end) stream.push(null);
  return stream;
}
