/**
 * Takes a composed message's bytes into the outbox: kept in memory while small, and once larger
 * than `spillBytes` written into the store's staging area a piece at a time as they are composed,
 * so that a large attachment is never held whole again beside its decoded source (the gateway's
 * resident memory grows by about one copy of the attachment; docs/benchmarks.md, row (n)).
 * More than `limitBytes` (MAX_UPLOAD_BYTES) is refused with 413, and what was staged goes.
 */
import type { Readable } from 'node:stream';
import { GatewayError } from '../errors.js';
import type { QueuedRaw, RawStaging } from './types.js';

/** Messages up to this size are queued from memory in one write; larger ones are staged. */
export const SPILL_BYTES = 1024 * 1024;
/** Staged bytes in flight (written, not yet confirmed) before waiting for the store. */
const PIECE_BYTES = 1024 * 1024;

export interface TakeOptions {
  limitBytes: number;
  /** Where bytes over `spillBytes` go; called at most once. */
  stage: () => RawStaging;
  /** The bytes will be needed whole later (the copy to Sent): kept as `held` when the store says holding them is cheaper. */
  neededWhole?: boolean;
  spillBytes?: number;
}

export function tooLarge(limitBytes: number, size?: number): GatewayError {
  const what = size === undefined ? 'The message would be larger than' : `The message would be ${size} bytes, over`;
  return new GatewayError('PAYLOAD_TOO_LARGE', `${what} the limit of ${limitBytes} bytes (MAX_UPLOAD_BYTES); attachments grow by a third in base64`);
}

export async function takeMessageBytes(source: Readable | Buffer, options: TakeOptions): Promise<QueuedRaw> {
  const { limitBytes } = options;
  if (Buffer.isBuffer(source)) {
    if (source.length > limitBytes) throw tooLarge(limitBytes, source.length);
    return { kind: 'memory', bytes: source };
  }
  const spillBytes = options.spillBytes ?? SPILL_BYTES;
  const pending: Buffer[] = [];
  let size = 0;
  let staging: RawStaging | undefined;
  let hold = false;
  // Staged pieces are written as they come (no joining: each join would be one more copy of the
  // message), with up to PIECE_BYTES of writes in flight before waiting for them.
  let writes: Array<Promise<void>> = [];
  let inFlight = 0;
  const write = async (piece: Buffer): Promise<void> => {
    writes.push(staging!.append(piece));
    inFlight += piece.length;
    if (inFlight >= PIECE_BYTES) await settle();
  };
  const settle = async (): Promise<void> => {
    const waiting = writes;
    writes = [];
    inFlight = 0;
    await Promise.all(waiting);
  };
  try {
    for await (const chunk of source) {
      const piece = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      size += piece.length;
      if (size > limitBytes) throw tooLarge(limitBytes);
      if (staging !== undefined) {
        if (hold) pending.push(piece);
        await write(piece);
        continue;
      }
      pending.push(piece);
      if (size > spillBytes) {
        staging = options.stage();
        hold = options.neededWhole === true && staging.holdWhenNeeded;
        for (const held of hold ? [...pending] : pending.splice(0)) await write(held);
      }
    }
    if (staging === undefined) return { kind: 'memory', bytes: Buffer.concat(pending, size) };
    await settle();
    return { kind: 'staged', size, ...(hold && { held: Buffer.concat(pending.splice(0), size) }) };
  } catch (err) {
    source.destroy();
    await Promise.allSettled(writes);
    await staging?.discard().catch(() => undefined);
    throw err;
  }
}

/** The size of what `takeMessageBytes` answered. */
export const queuedSize = (raw: QueuedRaw): number => (raw.kind === 'memory' ? raw.bytes.length : raw.size);
