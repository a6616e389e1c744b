/** The chunked download stream without a server: chunk by chunk, only as the reader asks, ended when it stops asking. */
import { describe, expect, it } from 'vitest';
import { createChunkStream, type ChunkStreamOptions } from '../../src/mail/imap/chunk-stream.js';
import { Base64Decoder } from '../../src/mail/mime/transfer-decoding.js';
import { readAll } from '../support/assertions.js';

const source = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));

/** A stream over a server that honours partial FETCHes: `data`'s bytes, empty past its end; and the FETCHes made. */
function over(data: Buffer, options: Omit<ChunkStreamOptions, 'fetchChunk'>) {
  const fetches: Array<[number, number]> = [];
  const s = createChunkStream({
    ...options,
    fetchChunk: async (start, length) => {
      fetches.push([start, length]);
      return data.subarray(start, start + length);
    },
  });
  return { s, fetches };
}

const stream = (idleTimeoutMs = 10_000) => over(source, { start: 100, end: 9_000, until: 'end', chunkBytes: 1024, idleTimeoutMs });

/** A body part of `data`, read until a short chunk. */
const part = (data: Buffer, chunkBytes: number, options: { end?: number; decoder?: Base64Decoder } = {}) =>
  over(data, { start: 0, end: options.end ?? data.length * 2 + chunkBytes, until: 'short-chunk', chunkBytes, idleTimeoutMs: 10_000, ...(options.decoder ? { decoder: options.decoder } : {}) });

describe('createChunkStream until the end', () => {
  it('delivers exactly the range, in chunks that each ask for at most chunkBytes', async () => {
    const { s, fetches } = stream();
    expect((await readAll(s)).equals(source.subarray(100, 9_000))).toBe(true);
    expect(fetches[0]).toEqual([100, 1024]);
    expect(fetches.every(([, length]) => length <= 1024)).toBe(true);
    expect(fetches.reduce((sum, [, length]) => sum + length, 0)).toBe(8_900);
  });

  it('fetches nothing more while the reader is paused, and ends it after the idle bound', async () => {
    const { s, fetches } = stream(150);
    const error = new Promise<Error>((resolve) => s.on('error', resolve));
    s.once('data', () => s.pause());
    const err = await error;
    expect(err.message).toMatch(/read nothing for 150 ms/);
    // Only what fills the stream's buffer was fetched, not the whole message.
    expect(fetches.length).toBeLessThan(5);
  });

  it('fails, rather than ending short, when the message ends early', async () => {
    const s = createChunkStream({ fetchChunk: async (start) => (start < 2048 ? Buffer.alloc(1024) : undefined), start: 0, end: 9_000, until: 'end', chunkBytes: 1024, idleTimeoutMs: 10_000 });
    await expect(readAll(s)).rejects.toMatchObject({ code: 'UPSTREAM_ERROR' });
  });
});

describe('createChunkStream until a short chunk (a body part)', () => {
  it('ends with the first chunk shorter than asked for, wherever the size said it would', async () => {
    const { s, fetches } = part(source.subarray(0, 2_500), 1024, { end: 1_000_000 });
    expect((await readAll(s)).equals(source.subarray(0, 2_500))).toBe(true);
    expect(fetches).toEqual([[0, 1024], [1024, 1024], [2048, 1024]]);
  });

  it('asks once more, and gets nothing, when the part is a whole number of chunks', async () => {
    const { s, fetches } = part(source.subarray(0, 2_048), 1024);
    expect((await readAll(s)).equals(source.subarray(0, 2_048))).toBe(true);
    expect(fetches.map(([start]) => start)).toEqual([0, 1024, 2048]);
    const empty = part(Buffer.alloc(0), 1024);
    expect(await readAll(empty.s)).toHaveLength(0);
  });

  it('fails when the message is gone between chunks', async () => {
    const s = createChunkStream({ fetchChunk: async (start) => (start === 0 ? Buffer.alloc(1024) : undefined), start: 0, end: 100_000, until: 'short-chunk', chunkBytes: 1024, idleTimeoutMs: 10_000 });
    await expect(readAll(s)).rejects.toMatchObject({ code: 'UPSTREAM_ERROR' });
  });

  it('fails rather than loop when a server keeps sending full chunks past the bound (it ignores the offset)', async () => {
    const s = createChunkStream({ fetchChunk: async (_start, length) => Buffer.alloc(length, 0x41), start: 0, end: 10 * 1024, until: 'short-chunk', chunkBytes: 1024, idleTimeoutMs: 10_000 });
    await expect(readAll(s)).rejects.toMatchObject({ code: 'UPSTREAM_ERROR' });
  });

  it('takes a first answer longer than asked for as the whole part (a server that ignores the partial)', async () => {
    const whole = source.subarray(0, 5_000);
    const s = createChunkStream({ fetchChunk: async () => whole, start: 0, end: 100_000, until: 'short-chunk', chunkBytes: 1024, idleTimeoutMs: 10_000 });
    expect((await readAll(s)).equals(whole)).toBe(true);
  });

  it('decodes across chunk boundaries, fetching on while a chunk decodes to nothing', async () => {
    const bytes = source.subarray(0, 3_000);
    // Base64 with a long run of line breaks in the middle: chunks of 16 bytes that decode to nothing.
    const text = bytes.toString('base64');
    const encoded = Buffer.from(`${text.slice(0, 1001)}${'\r\n'.repeat(40)}${text.slice(1001).replace(/.{76}/g, '$&\r\n')}`, 'latin1');
    const { s, fetches } = part(encoded, 16, { decoder: new Base64Decoder() });
    expect((await readAll(s)).equals(bytes)).toBe(true);
    expect(fetches.length).toBe(Math.floor(encoded.length / 16) + 1);
  });
});
