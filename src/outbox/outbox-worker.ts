/**
 * Works the outbox's jobs: each entry is sent when due (to the recipients not yet accepted), its
 * outcome saved before anything else happens, retried on the schedule after a temporary failure,
 * and, once the server accepted it, copied to `\Sent` and its original flagged. The final outcome is
 * the event `message.sent` or `message.failed`. A job is acknowledged only after all of that (a job
 * is done when its effect is; ARCHITECTURE.md, Queues).
 *
 * Never a second send of what was accepted: the recipients' outcomes are saved right after the SMTP
 * answer, and a later step (the copy, the flag, the event) that fails or is interrupted runs again
 * from the saved entry without sending. Only a process that dies between the server's answer and that
 * save can cause one more send (at least once; decision 0016).
 */
import type { Logger } from 'pino';
import { isGatewayError } from '../errors.js';
import type { NewEvent } from '../events/types.js';
import type { Metrics } from '../metrics/metrics.js';
import { Semaphore } from '../util/semaphore.js';
import { SPILL_BYTES } from './message-bytes.js';
import { nextSendAttempt } from './retry-schedule.js';
import { outcomeOfError, outcomeOfSuccess, type AttemptOutcome } from './smtp-outcome.js';
import type { SmtpAccount, SmtpTransports } from './smtp-transports.js';
import { FINAL_STATUSES, type OutboxEntry, type OutboxJob, type OutboxStore } from './types.js';

export interface OutboxWorkerOptions {
  store: OutboxStore;
  transports: Pick<SmtpTransports, 'send'>;
  /** The account's SMTP settings with the secret unsealed; throws GatewayError when it has none or is gone. */
  smtpAccount(accountId: string): Promise<SmtpAccount>;
  /** Appends the bytes sent to the account's `\Sent` mailbox with `\Seen`. */
  saveCopy(accountId: string, raw: Buffer): Promise<void>;
  /** Adds a flag to the original of a reply or forward. */
  flagOriginal(accountId: string, mailbox: string, id: string, flag: string): Promise<void>;
  /** Stores an event in the account's log. */
  emit(accountId: string, event: NewEvent): Promise<void>;
  retryHours: number;
  /** How long final entries stay listed. */
  keepMs: number;
  /** Messages sent at the same time by this process. */
  concurrency: number;
  log: Logger;
  metrics?: Metrics;
  /** Delays of the tries of a copy to Sent that failed (ms, after the first try). */
  copyRetryDelaysMs?: number[];
}

const COPY_RETRY_DELAYS_MS = [2_000, 10_000, 60_000];

export class OutboxWorker {
  private readonly sending: Semaphore;
  private readonly stopping = new AbortController();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly options: OutboxWorkerOptions) {
    this.sending = new Semaphore(options.concurrency);
  }

  /** Room for more jobs right now (the queue reads no more than that). */
  capacity(): number {
    return this.options.concurrency - this.inFlight;
  }

  private inFlight = 0;

  /** The queue's handler: runs one job to its end (or until the job is lost or the worker stops). */
  handle = (job: OutboxJob & { lost: AbortSignal }): Promise<void> => {
    const run = this.run(job).finally(() => this.running.delete(run));
    this.running.add(run);
    return run;
  };

  async close(): Promise<void> {
    this.stopping.abort(new Error('the gateway is stopping'));
    await Promise.allSettled([...this.running]);
  }

  private async run(job: OutboxJob & { lost: AbortSignal }): Promise<void> {
    const signal = AbortSignal.any([job.lost, this.stopping.signal]);
    // A job handed over as it was queued starts its first attempt at once, from what it carries.
    let begun = job.begun;
    for (;;) {
      if (signal.aborted) return;
      if (begun === undefined) {
        const entry = await this.options.store.peek(job.queueId);
        if (entry === null) return job.done();
        if (FINAL_STATUSES.has(entry.status)) {
          // A process that stopped after the outcome was saved: only what follows it is left.
          if (entry.status === 'sent' || entry.status === 'failed') await this.afterOutcome(entry, signal);
          if (signal.aborted) return;
          return job.done();
        }
        const due = entry.nextAttemptAt === null ? 0 : Date.parse(entry.nextAttemptAt) - Date.now();
        if (due > 0 && !(await sleep(due, signal))) return;
      }
      const release = await this.sending.acquire(signal).catch(() => null);
      if (release === null) return;
      this.inFlight += 1;
      let attempted: { saved: OutboxEntry; held: Buffer | null } | null;
      try {
        attempted = await this.attempt(job.queueId, begun);
        begun = undefined;
      } finally {
        this.inFlight -= 1;
        release();
      }
      if (attempted === null) return job.done();
      const { saved, held } = attempted;
      if (FINAL_STATUSES.has(saved.status)) {
        await this.afterOutcome(saved, signal, held);
        if (signal.aborted) return;
        return job.done();
      }
      // Some recipients accepted, others deferred: the copy is saved now, once.
      if (saved.sentAt !== null && saved.sentCopy === 'pending') await this.copyToSent(saved, signal, held);
    }
  }

  /**
   * One SMTP attempt: answers the entry as saved after it and the bytes sent when they were held
   * whole (for the copy to Sent), or null when it was cancelled or is gone.
   */
  private async attempt(queueId: string, begun: OutboxJob['begun']): Promise<{ saved: OutboxEntry; held: Buffer | null } | null> {
    const { store, metrics } = this.options;
    const entry = begun?.entry ?? (await store.begin(queueId));
    if (entry === null) return null;
    const now = (): string => new Date().toISOString();
    // A large message is read from the store as it is sent, never held whole (message-bytes.ts),
    // unless its copy to Sent is still to come: that needs it whole, so it is read once for both.
    const raw = begun?.raw ?? (entry.size > SPILL_BYTES && entry.sentCopy !== 'pending' ? await store.rawStream(queueId) : await store.raw(queueId));
    if (raw === null) {
      return this.withHeld(null, this.saveFinal({ ...entry, status: 'failed', permanent: true, error: 'the message bytes are gone from the outbox store', nextAttemptAt: null, updatedAt: now() }, 'failed'));
    }
    const to = entry.recipients.filter((r) => r.status === 'pending' || r.status === 'deferred').map((r) => r.address);
    let outcome: AttemptOutcome;
    let account: SmtpAccount | null = null;
    try {
      account = await this.options.smtpAccount(entry.account);
    } catch (err) {
      if (!isGatewayError(err) || (err.code !== 'ACCOUNT_NOT_FOUND' && err.code !== 'SMTP_NOT_CONFIGURED')) throw err;
      outcome = { recipients: to.map((address) => ({ address, outcome: 'failed', response: null })), response: null, error: err.message };
    }
    if (account !== null) {
      const started = performance.now();
      try {
        const reopen = Buffer.isBuffer(raw) ? undefined : () => store.rawStream(queueId);
        const info = await this.options.transports.send(account, { envelope: { from: entry.envelopeFrom, to }, raw, ...(reopen ? { reopen } : {}) });
        outcome = outcomeOfSuccess(to, info);
      } catch (err) {
        outcome = outcomeOfError(to, err);
      }
      metrics?.smtpDuration.observe((performance.now() - started) / 1000);
    }
    return this.withHeld(Buffer.isBuffer(raw) ? raw : null, this.record(entry, outcome!));
  }

  private async withHeld(held: Buffer | null, saving: Promise<OutboxEntry>): Promise<{ saved: OutboxEntry; held: Buffer | null }> {
    return { saved: await saving, held };
  }

  /** Folds an attempt's outcome into the entry and saves it, before anything else happens. */
  private async record(entry: OutboxEntry, outcome: AttemptOutcome): Promise<OutboxEntry> {
    const nowMs = Date.now();
    const nowIso = new Date(nowMs).toISOString();
    const byAddress = new Map(outcome.recipients.map((r) => [r.address, r]));
    const recipients = entry.recipients.map((r) => {
      const result = byAddress.get(r.address);
      return result === undefined ? r : { address: r.address, status: result.outcome, response: result.response };
    });
    const anySent = recipients.some((r) => r.status === 'sent');
    const anyRefused = recipients.some((r) => r.status === 'failed');
    const waiting = recipients.filter((r) => r.status === 'deferred');
    const next: OutboxEntry = {
      ...entry,
      recipients,
      updatedAt: nowIso,
      sentAt: entry.sentAt ?? (outcome.recipients.some((r) => r.outcome === 'sent') ? nowIso : null),
      error: outcome.error,
    };
    if (waiting.length > 0) {
      const at = nextSendAttempt(entry.attempts, nowMs, Date.parse(entry.createdAt), this.options.retryHours);
      if (at !== null) {
        this.options.log.info({ account: entry.account, queueId: entry.queueId, attempt: entry.attempts, waiting: waiting.length }, 'message deferred; tried again later');
        const retrying: OutboxEntry = { ...next, status: 'retrying', permanent: false, nextAttemptAt: new Date(at).toISOString() };
        await this.options.store.save(retrying);
        return retrying;
      }
      // Out of time: the recipients still deferred fail (not a refusal: `permanent` stays false).
      next.recipients = recipients.map((r) => (r.status === 'deferred' ? { ...r, status: 'failed' as const } : r));
      next.error = `gave up after ${entry.attempts} attempts over ${this.options.retryHours} h: ${outcome.error ?? 'the server kept deferring'}`;
      next.permanent = false;
    } else {
      next.permanent = anyRefused;
    }
    return this.saveFinal({ ...next, nextAttemptAt: null, status: anySent ? 'sent' : 'failed' }, anySent ? 'sent' : 'failed');
  }

  private async saveFinal(entry: OutboxEntry, status: 'sent' | 'failed'): Promise<OutboxEntry> {
    const final: OutboxEntry = { ...entry, status, sentCopy: entry.sentCopy === 'pending' && entry.sentAt === null ? 'skipped' : entry.sentCopy };
    await this.options.store.save(final);
    this.options.metrics?.outboxMessages.inc({ outcome: status });
    this.options.log.info(
      { account: final.account, queueId: final.queueId, status, attempts: final.attempts, recipients: final.recipients.length },
      status === 'sent' ? 'message sent' : 'message failed',
    );
    return final;
  }

  /** After the final outcome: the copy (if still pending), the original's flag, the event, then the entry's bytes go. */
  private async afterOutcome(entry: OutboxEntry, signal: AbortSignal, held: Buffer | null = null): Promise<void> {
    let current = entry;
    if (current.sentCopy === 'pending') current = await this.copyToSent(current, signal, held);
    if (signal.aborted) return;
    if (current.status === 'sent' && current.markOriginal !== null) {
      const { mailbox, id, flag } = current.markOriginal;
      await this.options.flagOriginal(current.account, mailbox, id, flag).catch((err: unknown) => {
        // The original may have been deleted or moved meanwhile; the message itself went out.
        this.options.log.warn({ account: current.account, queueId: current.queueId, err: { message: (err as Error).message } }, 'could not flag the original message');
      });
      current = { ...current, markOriginal: null };
    }
    const event: NewEvent =
      current.status === 'sent'
        ? { type: 'message.sent', mailbox: null, fields: { queueId: current.queueId, messageId: current.messageId, response: firstResponse(current), permanent: current.permanent ?? false, recipients: current.recipients } }
        : { type: 'message.failed', mailbox: null, fields: { queueId: current.queueId, messageId: current.messageId, error: current.error, permanent: current.permanent ?? false, recipients: current.recipients } };
    await this.options.emit(current.account, event);
    await this.options.store.finish(current, this.options.keepMs);
  }

  /** Appends the bytes sent to `\Sent`, a few times if it fails; never sends again. `held`: the bytes when this process has them. */
  private async copyToSent(entry: OutboxEntry, signal: AbortSignal, held: Buffer | null = null): Promise<OutboxEntry> {
    const delays = this.options.copyRetryDelaysMs ?? COPY_RETRY_DELAYS_MS;
    let lastError = '';
    for (let attempt = 0; attempt <= delays.length; attempt += 1) {
      if (attempt > 0 && !(await sleep(delays[attempt - 1]!, signal))) return entry;
      const raw = held ?? (await this.options.store.raw(entry.queueId));
      if (raw === null) {
        lastError = 'the message bytes are gone from the outbox store';
        break;
      }
      try {
        await this.options.saveCopy(entry.account, raw);
        const saved: OutboxEntry = { ...entry, sentCopy: 'saved', sentCopyError: null, updatedAt: new Date().toISOString() };
        await this.options.store.save(saved);
        return saved;
      } catch (err) {
        lastError = (err as Error).message;
        this.options.log.warn({ account: entry.account, queueId: entry.queueId, attempt: attempt + 1, err: { message: lastError } }, 'could not save the copy in Sent');
      }
    }
    const failed: OutboxEntry = { ...entry, sentCopy: 'failed', sentCopyError: lastError, updatedAt: new Date().toISOString() };
    await this.options.store.save(failed);
    return failed;
  }
}

function firstResponse(entry: OutboxEntry): string | null {
  return entry.recipients.find((r) => r.status === 'sent')?.response ?? null;
}

/** Resolves true after `ms`, false at once when `signal` aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, Math.min(ms, 2_147_000_000));
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
