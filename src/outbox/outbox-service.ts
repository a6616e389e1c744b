/**
 * The sending use cases behind the outbox routes (src/http/routes/outbox.ts): compose or take the
 * message, queue it (answering an Idempotency-Key seen before with the first receipt), list, show
 * and cancel entries. No HTTP types here; the worker (outbox-worker.ts) does the sending.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { AccountService } from '../accounts/account-service.js';
import { GatewayError } from '../errors.js';
import type { MailService } from '../mail/mail-service.js';
import type { Address } from '../mail/types.js';
import type { Metrics } from '../metrics/metrics.js';
import { composeMessage, prepareRawMessage, type ComposeSources, type ComposedMessage, type SendBody } from './compose.js';
import { parseAddressList } from './addresses.js';
import { queuedSize, takeMessageBytes } from './message-bytes.js';
import type { OutboxEntry, OutboxStore, SendReceipt } from './types.js';

/** API.md: the same key on the same account within 24 h answers the first result. */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

export type SendInput = { kind: 'json'; body: SendBody } | { kind: 'raw'; raw: Buffer; to?: string[]; cc?: string[]; bcc?: string[] };

export interface OutboxServiceOptions {
  store: OutboxStore;
  accounts: AccountService;
  mail: MailService;
  /** Largest message sent (MAX_UPLOAD_BYTES): a composed message over it is 413. */
  maxMessageBytes: number;
  /** How long final and cancelled entries stay listed. */
  keepMs: number;
  log: Logger;
  metrics?: Metrics;
}

export class OutboxService {
  constructor(private readonly options: OutboxServiceOptions) {}

  async send(accountId: string, input: SendInput, idempotencyKey?: string): Promise<{ receipt: SendReceipt; replayed: boolean }> {
    const { accounts, store } = this.options;
    const record = await accounts.get(accountId);
    if (!record.smtp) {
      throw new GatewayError('SMTP_NOT_CONFIGURED', `Account ${accountId} has no smtp settings; add them with PATCH /v1/accounts/${accountId}`);
    }
    const idempotency = idempotencyKey === undefined ? undefined : { keyHash: idempotencyHash(accountId, idempotencyKey), ttlMs: IDEMPOTENCY_TTL_MS };
    // A request seen before is answered before anything is composed: the referenced message may be gone by now.
    const earlier = idempotency ? await store.replay(idempotency) : null;
    if (earlier !== null) return { receipt: earlier, replayed: true };

    const accountEmail = AccountService.emailOf(record);
    const composeOptions = { accountEmail, messageIdDomain: messageIdDomain(accountEmail) };
    const composed: ComposedMessage =
      input.kind === 'json'
        ? await composeMessage(input.body, this.sources(accountId), composeOptions)
        : prepareRawMessage(input.raw, { ...(input.to ? { to: input.to } : {}), ...(input.cc ? { cc: input.cc } : {}), ...(input.bcc ? { bcc: input.bcc } : {}) }, composeOptions);
    const queueId = `q_${randomBytes(12).toString('base64url')}`;
    const saveToSent = record.protocol === 'imap' && !(input.kind === 'json' && input.body.saveToSent === false);
    const raw = await takeMessageBytes(composed.raw, { limitBytes: this.options.maxMessageBytes, stage: () => store.stage(queueId), neededWhole: saveToSent });
    const now = new Date().toISOString();
    const entry: OutboxEntry = {
      queueId,
      account: accountId,
      messageId: composed.messageId,
      status: 'queued',
      attempts: 0,
      nextAttemptAt: now,
      envelopeFrom: composed.envelope.from,
      recipients: composed.envelope.to.map((address) => ({ address, status: 'pending', response: null })),
      error: null,
      permanent: null,
      size: queuedSize(raw),
      sentCopy: saveToSent ? 'pending' : 'skipped',
      sentCopyError: null,
      markOriginal: composed.markOriginal ?? null,
      createdAt: now,
      updatedAt: now,
      sentAt: null,
    };
    let result: { receipt: SendReceipt; replayed: boolean };
    try {
      result = await store.enqueue(entry, raw, idempotency);
    } catch (err) {
      if (raw.kind === 'staged') await store.stage(queueId).discard().catch(() => undefined);
      throw err;
    }
    if (!result.replayed) {
      this.options.metrics?.outboxMessages.inc({ outcome: 'queued' });
      this.options.log.info({ account: accountId, queueId: entry.queueId, recipients: entry.recipients.length, size: entry.size }, 'message queued');
    }
    return result;
  }

  async list(accountId: string): Promise<OutboxEntry[]> {
    await this.options.accounts.get(accountId);
    return this.options.store.list(accountId);
  }

  async get(accountId: string, queueId: string): Promise<OutboxEntry> {
    await this.options.accounts.get(accountId);
    const entry = await this.options.store.get(accountId, queueId);
    if (entry === null) throw notFound(queueId);
    return entry;
  }

  async cancel(accountId: string, queueId: string): Promise<void> {
    await this.options.accounts.get(accountId);
    const { outcome, entry } = await this.options.store.cancel(accountId, queueId, this.options.keepMs);
    if (outcome === 'missing') throw notFound(queueId);
    if (outcome === 'final') {
      // API.md: cancel while not yet sent; then 404. The detail says why, since the entry is still listed.
      const state = entry?.status === 'sending' ? 'is being sent' : `was already ${entry?.status ?? 'finished'}`;
      throw new GatewayError('OUTBOX_ENTRY_NOT_FOUND', `Outbox entry ${queueId} ${state}; it can no longer be cancelled`);
    }
    this.options.log.info({ account: accountId, queueId }, 'message cancelled');
  }

  /** What composing a reply, a forward or a referenced attachment reads from the account's mail. */
  private sources(accountId: string): ComposeSources {
    const { mail } = this.options;
    return {
      original: async (mailbox, id) => {
        const message = await mail.getMessage(accountId, mailbox, id, false);
        const replyTo = message.headers.filter((h) => h.key.toLowerCase() === 'reply-to').flatMap((h) => parseAddressList(h.value));
        return {
          messageId: message.messageId,
          references: message.references,
          subject: message.subject,
          from: message.from,
          replyTo: replyTo as Address[],
          to: message.to,
          cc: message.cc,
        };
      },
      raw: async (mailbox, id) => {
        const raw = await mail.openRaw(accountId, mailbox, id);
        return collect(raw.stream, this.options.maxMessageBytes);
      },
      attachment: async (mailbox, id, attachmentId) => {
        const attachment = await mail.openAttachment(accountId, mailbox, id, attachmentId);
        return { filename: attachment.filename, contentType: attachment.contentType, content: await collect(attachment.stream, this.options.maxMessageBytes) };
      },
    };
  }
}

/** Keys are per account (API.md): the same key on two accounts is two requests. */
function idempotencyHash(accountId: string, key: string): string {
  return createHash('sha256').update(accountId).update('\0').update(key).digest('hex');
}

/** The right-hand side of generated Message-IDs: the account's domain (RFC 5322 §3.6.4 asks for uniqueness, which the random left side gives). */
function messageIdDomain(email: string | null): string {
  const at = email?.lastIndexOf('@') ?? -1;
  return email !== null && at > 0 ? email.slice(at + 1) : 'mailgw.invalid';
}

function notFound(queueId: string): GatewayError {
  return new GatewayError('OUTBOX_ENTRY_NOT_FOUND', `No outbox entry ${queueId} on this account`);
}

/** Reads a stream into one Buffer, refusing more than `limit` bytes (a referenced message or attachment). */
async function collect(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      size += buffer.length;
      if (size > limit) throw new GatewayError('PAYLOAD_TOO_LARGE', `The referenced content is over the limit of ${limit} bytes (MAX_UPLOAD_BYTES)`);
      chunks.push(buffer);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks, size);
}
