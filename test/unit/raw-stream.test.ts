/** The raw download stream without a server: chunk by chunk, only as the reader asks, ended when it stops asking. */
import { describe, expect, it } from 'vitest';
import { createRawStream } from '../../src/mail/imap/raw-stream.js';
import { readAll } from '../support/assertions.js';

const source = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));

function stream(idleTimeoutMs = 10_000) {
  const fetches: Array<[number, number]> = [];
  const s = createRawStream({
    fetchChunk: async (start, length) => {
      fetches.push([start, length]);
      return source.subarray(start, start + length);
    },
    start: 100,
    end: 9_000,
    chunkBytes: 1024,
    idleTimeoutMs,
  });
  return { s, fetches };
}

describe('createRawStream', () => {
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
    const s = createRawStream({ fetchChunk: async (start) => (start < 2048 ? Buffer.alloc(1024) : undefined), start: 0, end: 9_000, chunkBytes: 1024, idleTimeoutMs: 10_000 });
    await expect(readAll(s)).rejects.toMatchObject({ code: 'UPSTREAM_ERROR' });
  });
});
