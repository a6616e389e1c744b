/**
 * The outbox's shapes (API.md, Sending): an entry as stored and shown, and the one interface both
 * stores (Redis Streams, files under DATA_DIR) implement. Nothing here knows SMTP or HTTP.
 */
import type { Readable } from 'node:stream';

export const OUTBOX_STATUSES = ['queued', 'sending', 'retrying', 'sent', 'failed', 'cancelled'] as const;
export type OutboxStatus = (typeof OUTBOX_STATUSES)[number];

/** Statuses after which nothing more is sent. */
export const FINAL_STATUSES: ReadonlySet<OutboxStatus> = new Set(['sent', 'failed', 'cancelled']);

/**
 * One envelope recipient's outcome: `pending` (not tried yet), `sent` (the server accepted it; it is
 * never sent to again), `deferred` (a temporary refusal: tried again), `failed` (refused for good, or
 * still deferred when the retries ran out).
 */
export type RecipientStatus = 'pending' | 'sent' | 'deferred' | 'failed';

export interface RecipientOutcome {
  address: string;
  status: RecipientStatus;
  /** The server's last reply about this recipient (`250 2.0.0 Ok: queued as …`, `550 5.1.1 …`). */
  response: string | null;
}

/** What happens to the copy in `\Sent` (IMAP accounts): `pending` until the message is accepted. */
export type SentCopyStatus = 'pending' | 'saved' | 'failed' | 'skipped';

export interface OutboxEntry {
  queueId: string;
  account: string;
  /** The RFC 5322 Message-ID, `<…>`. */
  messageId: string;
  status: OutboxStatus;
  /** SMTP attempts made (a connection that failed counts). */
  attempts: number;
  /** ISO 8601: when the next attempt is due (queued or retrying), else null. */
  nextAttemptAt: string | null;
  /** The SMTP envelope sender (MAIL FROM). */
  envelopeFrom: string;
  recipients: RecipientOutcome[];
  /** Why the last attempt (or the whole send) failed, for people; null when it did not. */
  error: string | null;
  /** True when a refusal (5xx) decided the outcome; false for a temporary failure; null before any. */
  permanent: boolean | null;
  /** Size in bytes of the message as sent. */
  size: number;
  /** Whether a copy goes to the account's `\Sent` mailbox, and how that went. */
  sentCopy: SentCopyStatus;
  /** Why the copy could not be saved (it is retried a few times; the message itself is never sent twice). */
  sentCopyError: string | null;
  /** The original of a reply or forward, flagged once the message is accepted. */
  markOriginal: { mailbox: string; id: string; flag: string } | null;
  createdAt: string;
  updatedAt: string;
  /** ISO 8601: when the server accepted the message (the first recipient accepted), else null. */
  sentAt: string | null;
}

/** What `POST …/send` answers (and answers again for the same Idempotency-Key). */
export interface SendReceipt {
  queueId: string;
  messageId: string;
}

/** An idempotency key as stored: per account, hashed, kept 24 h (API.md). */
export interface IdempotencyClaim {
  /** SHA-256 (hex) of the account id and the header's value. */
  keyHash: string;
  ttlMs: number;
}

/**
 * The composed bytes as they reach the store: whole in memory (most messages), or already written
 * into the store piece by piece through `stage` (large ones, so that no process holds them whole).
 */
export type QueuedRaw =
  | { kind: 'memory'; bytes: Buffer }
  /** `held`: the same bytes kept by this process (when it will need them whole: the copy to Sent). */
  | { kind: 'staged'; size: number; held?: Buffer };

/** Bytes of a message being queued, written into the store before its entry exists. */
export interface RawStaging {
  /**
   * Whether the process should also keep the bytes it stages when it will need them whole (the copy
   * to Sent): true where reading them back costs more memory than holding them (Redis replies are
   * parsed into pieces and joined; a file is read straight into one buffer).
   */
  readonly holdWhenNeeded: boolean;
  append(chunk: Buffer): Promise<void>;
  /** Forgets what was written (the message was refused, or queueing failed). */
  discard(): Promise<void>;
}

/** A job handed to this process by the queue: the entry to work on, and how to let the queue know. */
export interface OutboxJob {
  queueId: string;
  /**
   * Set when this process queued the entry and the queue handed its job straight back: the entry as
   * begun (status `sending`, this attempt counted) and its bytes when they were in memory, so the
   * first attempt reads nothing back from the store.
   */
  begun?: { entry: OutboxEntry; raw: Buffer | null };
  /** Tells the queue the job is done (the entry is final, and its copy and flag are dealt with). */
  done(): Promise<void>;
}

export interface OutboxStore {
  /**
   * Stores the entry and its bytes and queues it, in one step. With `idempotency`, when the key was
   * seen for the account within its TTL nothing is stored and the first receipt is answered.
   */
  enqueue(entry: OutboxEntry, raw: QueuedRaw, idempotency?: IdempotencyClaim): Promise<{ receipt: SendReceipt; replayed: boolean }>;
  /** Where a large message's bytes are written before `enqueue` (`{ kind: 'staged' }`); unclaimed, they expire or go at the next start. */
  stage(queueId: string): RawStaging;
  /** The receipt an Idempotency-Key was first answered with, while it is kept; else null. */
  replay(idempotency: IdempotencyClaim): Promise<SendReceipt | null>;
  get(account: string, queueId: string): Promise<OutboxEntry | null>;
  /** The entry, whatever its account (the worker's read). */
  peek(queueId: string): Promise<OutboxEntry | null>;
  /** The account's entries still kept, newest first. */
  list(account: string): Promise<OutboxEntry[]>;
  /** The bytes to send (null once dropped: the entry is final and its copy dealt with). */
  raw(queueId: string): Promise<Buffer | null>;
  /** The same bytes read piece by piece, for messages too large to hold whole while they are sent. */
  rawStream(queueId: string): Promise<Readable | null>;
  /**
   * Marks the entry `sending` (one more attempt) when it is `queued`, `retrying` or already
   * `sending` (a process died mid-attempt); answers it, or null when it was cancelled or is gone.
   */
  begin(queueId: string): Promise<OutboxEntry | null>;
  /** Writes the entry as the worker changed it (only the worker holding its job writes). */
  save(entry: OutboxEntry): Promise<void>;
  /** The entry is final and its copy dealt with: its bytes go, and it is kept `keepMs` for listing. */
  finish(entry: OutboxEntry, keepMs: number): Promise<void>;
  /**
   * Cancels an entry not yet being sent: `cancelled` when it was `queued` or `retrying`, `final`
   * when it is past that (sending, sent, failed, cancelled), `missing` when there is none.
   */
  cancel(account: string, queueId: string, keepMs: number): Promise<{ outcome: 'cancelled' | 'final' | 'missing'; entry: OutboxEntry | null }>;
  /** Entries waiting or in flight, over all accounts (the `outbox depth` metric). */
  depth(): Promise<number>;
  /** Drops every entry of a deleted account. */
  dropAccount(account: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The queue side: hands jobs to this process. A job stays this process's until `done` (or until the
 * process stops: another process then takes it over, with the entry as last saved).
 */
export interface OutboxQueue {
  /**
   * Starts handing jobs to `handler`, reading no more new ones than `capacity()` says there is room
   * for. `lost` aborts when the job is no longer this process's (another one took it over).
   */
  start(handler: (job: OutboxJob & { lost: AbortSignal }) => Promise<void>, capacity?: () => number): void;
  close(): Promise<void>;
}
