/**
 * The outbox worker's promise that matters most (src/outbox/outbox-worker.ts): what the SMTP server
 * accepted is never sent again — not when the copy to Sent keeps failing, and not when a process
 * starts again after the outcome was saved. The SMTP side is a recording stand-in here (the real
 * MTA is in test/integration/sending*.test.ts); the store is the real file outbox.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../src/events/types.js';
import { FileOutbox } from '../../src/outbox/file-outbox.js';
import { OutboxWorker, type OutboxWorkerOptions } from '../../src/outbox/outbox-worker.js';
import type { Submission } from '../../src/outbox/smtp-transports.js';
import type { OutboxEntry, QueuedRaw } from '../../src/outbox/types.js';

const log = pino({ level: 'silent' });
const memory = (bytes: Buffer): QueuedRaw => ({ kind: 'memory', bytes });
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

function entry(queueId: string): OutboxEntry {
  const now = new Date().toISOString();
  return {
    queueId, account: 'alice', messageId: `<${queueId}@example.com>`, status: 'queued', attempts: 0, nextAttemptAt: now,
    envelopeFrom: 'alice@example.com', recipients: [{ address: 'bob@example.com', status: 'pending', response: null }],
    error: null, permanent: null, size: 4, sentCopy: 'pending', sentCopyError: null,
    markOriginal: { mailbox: 'INBOX', id: 'AAAA', flag: '\\Answered' }, createdAt: now, updatedAt: now, sentAt: null,
  };
}

function harness(store: FileOutbox, overrides: Partial<OutboxWorkerOptions> = {}) {
  const sent: Submission[] = [];
  const events: NewEvent[] = [];
  const flagged: string[] = [];
  const worker = new OutboxWorker({
    store,
    transports: {
      send: async (_account, submission) => {
        sent.push(submission);
        return { accepted: submission.envelope.to, rejected: [], response: '250 2.0.0 Ok: queued as X', envelope: { from: '', to: [] }, messageId: '' } as never;
      },
    },
    smtpAccount: async (accountId) => ({ accountId, host: 'smtp.example.com', port: 587, security: 'starttls', username: 'alice', credentials: { password: 'pw' }, tlsVerify: true }),
    saveCopy: async () => {
      throw new Error('NO [OVERQUOTA] Quota exceeded');
    },
    flagOriginal: async (_account, _mailbox, id, flag) => void flagged.push(`${id} ${flag}`),
    emit: async (_account, event) => void events.push(event),
    retryHours: 24,
    keepMs: 60_000,
    concurrency: 2,
    log,
    copyRetryDelaysMs: [1, 1],
    ...overrides,
  });
  return { worker, sent, events, flagged };
}

async function until(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('OutboxWorker', () => {
  it('reports a copy to Sent that keeps failing, and sends the message once', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-worker-'));
    dirs.push(dir);
    const store = await FileOutbox.open(dir, log);
    const { worker, sent, events, flagged } = harness(store);
    store.start(worker.handle, () => worker.capacity());
    await store.enqueue(entry('q_worker0001'), memory(Buffer.from('x\r\n')));
    await until(async () => events.length === 1 && (await store.raw('q_worker0001')) === null);
    const final = (await store.peek('q_worker0001'))!;
    expect(final).toMatchObject({ status: 'sent', attempts: 1, sentCopy: 'failed', sentCopyError: 'NO [OVERQUOTA] Quota exceeded' });
    expect(final.recipients).toEqual([{ address: 'bob@example.com', status: 'sent', response: '250 2.0.0 Ok: queued as X' }]);
    expect(sent).toHaveLength(1);
    expect(flagged).toEqual(['AAAA \\Answered']);
    expect(events[0]).toMatchObject({ type: 'message.sent', fields: { queueId: 'q_worker0001' } });
    await worker.close();
    await store.close();
  });

  it('after a restart, finishes what followed a saved outcome without sending again', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-worker-'));
    dirs.push(dir);
    const first = await FileOutbox.open(dir, log);
    await first.enqueue(entry('q_worker0002'), memory(Buffer.from('x\r\n')));
    // The outcome was saved, then the process died before the copy, the flag and the event.
    const begun = (await first.begin('q_worker0002'))!;
    await first.save({ ...begun, status: 'sent', recipients: [{ address: 'bob@example.com', status: 'sent', response: '250 ok' }], sentAt: new Date().toISOString() });
    await first.close();

    const store = await FileOutbox.open(dir, log);
    const copies: Buffer[] = [];
    const { worker, sent, events } = harness(store, { saveCopy: async (_account, raw) => void copies.push(raw) });
    store.start(worker.handle, () => worker.capacity());
    await until(async () => events.length === 1 && (await store.raw('q_worker0002')) === null);
    expect(sent).toHaveLength(0);
    expect(copies.map((c) => c.toString())).toEqual(['x\r\n']);
    expect((await store.peek('q_worker0002'))?.sentCopy).toBe('saved');
    await worker.close();
    await store.close();
  });
});
