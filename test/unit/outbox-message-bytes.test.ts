import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { rejection } from '../support/assertions.js';
import { takeMessageBytes } from '../../src/outbox/message-bytes.js';
import type { RawStaging } from '../../src/outbox/types.js';

/** A staging area in memory that records what was written, in order, and whether it was discarded. */
function recordingStage(holdWhenNeeded = false): { stage: () => RawStaging; written: Buffer[]; opened: number; discarded: boolean } {
  const record = { written: [] as Buffer[], opened: 0, discarded: false, stage: (): RawStaging => staging };
  const staging: RawStaging = {
    holdWhenNeeded,
    append: async (chunk) => {
      // Writes finish out of order; the bytes are recorded in the order they were handed over.
      record.written.push(chunk);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
    },
    discard: async () => {
      record.discarded = true;
    },
  };
  record.stage = () => {
    record.opened += 1;
    return staging;
  };
  return record;
}

const chunked = (bytes: Buffer, size: number): Readable => {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return Readable.from(out);
};

describe('takeMessageBytes', () => {
  it('keeps a small message in memory, whole', async () => {
    const bytes = randomBytes(50_000);
    const staging = recordingStage();
    const taken = await takeMessageBytes(chunked(bytes, 1_000), { limitBytes: 1e9, stage: staging.stage, spillBytes: 100_000 });
    expect(taken.kind).toBe('memory');
    expect(taken.kind === 'memory' && taken.bytes.equals(bytes)).toBe(true);
    expect(staging.opened).toBe(0);
  });

  it('stages a large one as it is produced, every byte once and in order, holding it only when asked and worth it', async () => {
    const bytes = randomBytes(3_000_000);
    for (const [holdWhenNeeded, neededWhole] of [[false, true], [true, false], [true, true]] as const) {
      const staging = recordingStage(holdWhenNeeded);
      const taken = await takeMessageBytes(chunked(bytes, 65_536), { limitBytes: 1e9, stage: staging.stage, spillBytes: 100_000, neededWhole });
      expect(taken).toMatchObject({ kind: 'staged', size: bytes.length });
      expect(staging.opened).toBe(1);
      expect(Buffer.concat(staging.written).equals(bytes)).toBe(true);
      const held = taken.kind === 'staged' ? taken.held : undefined;
      expect(held !== undefined).toBe(holdWhenNeeded && neededWhole);
      if (held !== undefined) expect(held.equals(bytes)).toBe(true);
    }
  });

  it('refuses more than the limit with 413 and discards what was staged', async () => {
    const staging = recordingStage();
    const err = await rejection(takeMessageBytes(chunked(randomBytes(500_000), 10_000), { limitBytes: 300_000, stage: staging.stage, spillBytes: 100_000 }));
    expect(err).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', message: expect.stringMatching(/300000 bytes \(MAX_UPLOAD_BYTES\)/) });
    expect(staging.discarded).toBe(true);
    const whole = await rejection(takeMessageBytes(randomBytes(400_000), { limitBytes: 300_000, stage: staging.stage }));
    expect(whole.message).toMatch(/would be 400000 bytes/);
  });
});
