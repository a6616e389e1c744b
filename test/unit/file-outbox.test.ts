/**
 * The embedded outbox (src/outbox/file-outbox.ts): what a gateway started again on the same
 * DATA_DIR finds (entries not final are handed out again, bytes kept), Idempotency-Keys, cancels,
 * and bytes left by a crash between the two writes.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FileOutbox } from '../../src/outbox/file-outbox.js';
import type { OutboxEntry, QueuedRaw } from '../../src/outbox/types.js';

const log = pino({ level: 'silent' });
const memory = (bytes: Buffer): QueuedRaw => ({ kind: 'memory', bytes });
const dirs: string[] = [];

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-file-outbox-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

function entry(queueId: string, fields: Partial<OutboxEntry> = {}): OutboxEntry {
  const now = new Date().toISOString();
  return {
    queueId,
    account: 'alice',
    messageId: `<${queueId}@example.com>`,
    status: 'queued',
    attempts: 0,
    nextAttemptAt: now,
    envelopeFrom: 'alice@example.com',
    recipients: [{ address: 'bob@example.com', status: 'pending', response: null }],
    error: null,
    permanent: null,
    size: 5,
    sentCopy: 'pending',
    sentCopyError: null,
    markOriginal: null,
    createdAt: now,
    updatedAt: now,
    sentAt: null,
    ...fields,
  };
}

describe('FileOutbox', () => {
  it('hands every entry not yet final to the worker again after a restart, with its bytes', async () => {
    const dir = await dataDir();
    const first = await FileOutbox.open(dir, log);
    await first.enqueue(entry('q_aaaaaaaaaa'), memory(Buffer.from('one\r\n')));
    await first.enqueue(entry('q_bbbbbbbbbb'), memory(Buffer.from('two\r\n')));
    await first.enqueue(entry('q_cccccccccc'), memory(Buffer.from('three')));
    expect((await first.begin('q_aaaaaaaaaa'))?.status).toBe('sending');
    const done = (await first.peek('q_cccccccccc'))!;
    await first.finish({ ...done, status: 'sent' }, 60_000);
    await first.close();

    const second = await FileOutbox.open(dir, log);
    const handed: string[] = [];
    second.start(async (job) => void handed.push(job.queueId));
    expect(handed.sort()).toEqual(['q_aaaaaaaaaa', 'q_bbbbbbbbbb']);
    expect((await second.peek('q_aaaaaaaaaa'))).toMatchObject({ status: 'sending', attempts: 1 });
    expect((await second.raw('q_aaaaaaaaaa'))?.toString()).toBe('one\r\n');
    expect(await second.raw('q_cccccccccc')).toBeNull();
    expect((await second.list('alice')).map((e) => e.queueId).sort()).toEqual(['q_aaaaaaaaaa', 'q_bbbbbbbbbb', 'q_cccccccccc']);
    expect(await second.depth()).toBe(2);
    await second.close();
  });

  it('answers an Idempotency-Key seen before with the first receipt, across a restart', async () => {
    const dir = await dataDir();
    const claim = { keyHash: 'f'.repeat(64), ttlMs: 60_000 };
    const first = await FileOutbox.open(dir, log);
    expect((await first.enqueue(entry('q_dddddddddd'), memory(Buffer.from('x')), claim)).replayed).toBe(false);
    await first.close();
    const second = await FileOutbox.open(dir, log);
    const again = await second.enqueue(entry('q_eeeeeeeeee'), memory(Buffer.from('y')), claim);
    expect(again).toEqual({ receipt: { queueId: 'q_dddddddddd', messageId: '<q_dddddddddd@example.com>' }, replayed: true });
    expect(await second.peek('q_eeeeeeeeee')).toBeNull();
    await second.close();
  });

  it('cancels only what is not being sent, and forgets bytes never queued', async () => {
    const dir = await dataDir();
    const outbox = await FileOutbox.open(dir, log);
    await outbox.enqueue(entry('q_ffffffffff'), memory(Buffer.from('x')));
    await outbox.enqueue(entry('q_gggggggggg'), memory(Buffer.from('y')));
    await outbox.begin('q_gggggggggg');
    expect((await outbox.cancel('alice', 'q_ffffffffff', 60_000)).outcome).toBe('cancelled');
    expect((await outbox.cancel('alice', 'q_gggggggggg', 60_000)).outcome).toBe('final');
    expect((await outbox.cancel('mallory', 'q_gggggggggg', 60_000)).outcome).toBe('missing');
    expect(await outbox.begin('q_ffffffffff')).toBeNull();
    await outbox.close();

    await writeFile(path.join(dir, 'outbox', 'raw', 'q_orphan0000.eml'), 'never queued');
    const reopened = await FileOutbox.open(dir, log);
    expect(await readdir(path.join(dir, 'outbox', 'raw'))).toEqual(['q_gggggggggg.eml']);
    await reopened.close();
  });
});
