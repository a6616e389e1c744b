/**
 * The shapes of the event source (API.md, Events): what a watcher produces, what the log stores and
 * hands to SSE readers (and, later, webhook deliveries), and the per-mailbox state a watcher keeps
 * so that a restart reports what changed while nobody watched.
 *
 * Nothing here knows IMAP, POP3 or HTTP: watchers (mail/imap/watch, mail/pop3/watch) translate the
 * protocol into these, routes translate these into `text/event-stream`.
 */

/** Every type an event may have (API.md). `events.lost` is synthesised per stream, never stored. */
export const EVENT_TYPES = [
  'message.new',
  'message.updated',
  'message.deleted',
  'mailbox.created',
  'mailbox.deleted',
  'mailbox.renamed',
  'message.sent',
  'message.failed',
  'account.error',
  'account.recovered',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Sent on a stream whose resume point is older than what the log keeps (never stored). */
export const EVENTS_LOST = 'events.lost';

/**
 * An event as a watcher hands it to the log: its type, the mailbox it concerns (null for
 * account-wide events) and its type's extra fields (API.md table: `message`, `flags`, `messageId`,
 * `from`, `code`, `detail`, ...). The log adds `id`, `account` and `at`.
 */
export interface NewEvent {
  type: EventType;
  mailbox: string | null;
  /** When the change was seen (ISO 8601); the log's clock when absent. */
  at?: string;
  /** The type's extra fields, copied into the stored event as they are (JSON-serialisable). */
  fields?: Record<string, unknown>;
  /** performance.now() when the watcher saw the change, for the event-lag metric (never stored). */
  seenAtMs?: number;
}

/** A stored event, as readers see it: `{ id, type, account, mailbox, at, ...fields }`. */
export interface MailEvent {
  id: string;
  type: EventType;
  account: string;
  mailbox: string | null;
  at: string;
  [field: string]: unknown;
}

/**
 * What a watcher remembers of one mailbox between two looks at it, stored beside the log. With
 * CONDSTORE/QRESYNC (RFC 7162) `highestModseq` lets the next look ask only for what changed.
 */
export interface MailboxWatchState {
  uidValidity: string;
  uidNext: number;
  highestModseq: string | null;
  messages: number;
}

/**
 * One mailbox's part of a state update, applied together with the events it explains (atomically
 * where the backend allows: Redis MULTI on keys of one hash slot).
 *
 * Messages are keyed by a string: the UID (IMAP) or the UIDL (POP3); the value is the message's
 * flags (sorted), `[]` for POP3.
 */
export interface WatchStateChange {
  mailbox: string;
  /** The mailbox's new state; null when the mailbox is gone (its whole state is removed). */
  state: MailboxWatchState | null;
  /** Drop every stored message of this mailbox before `set` (first look, or UIDVALIDITY changed). */
  replace?: boolean;
  /** Messages whose flags are now these (new or changed). */
  set?: Array<[key: string, flags: string[]]>;
  /** Messages gone. */
  remove?: string[];
}

/** What the log answers to "what came after this id". */
export interface ReadResult {
  events: MailEvent[];
  /**
   * True when `afterId` is older than the oldest event still kept (trimmed by retention): events
   * may have been missed, and the reader is told with one `events.lost` (API.md).
   */
  lost: boolean;
}

/**
 * The durable, ordered, per-account event log (Redis Streams, or files under DATA_DIR). Ids are
 * opaque to clients, ordered per account, and of the form `<ms>-<seq>` in both backends (what
 * Redis Streams issue), so a resume point reads the same whichever backend wrote it.
 */
export interface EventLog {
  /**
   * Stores `events` (in this order) for one account, with the state changes they explain, before
   * anyone can read them; answers them as stored. An empty `events` with changes only stores the
   * changes. Throws when the log cannot be written (the watcher retries; nothing is reported
   * that was not stored).
   */
  append(accountId: string, events: NewEvent[], changes?: WatchStateChange[]): Promise<MailEvent[]>;
  /** Events stored after `afterId` (exclusive), oldest first, at most `limit`. */
  readAfter(accountId: string, afterId: string, limit: number): Promise<ReadResult>;
  /** The id of the newest stored event, or `0-0` when there is none: a stream starting "now". */
  latestId(accountId: string): Promise<string>;
  /** Whether `id` is one this log could have issued (syntax only); else the caller answers 400. */
  isValidId(id: string): boolean;
  /**
   * Calls `listener` soon after events of `accountId` are appended, by this process or any other
   * sharing the backend. A hint only: the reader then reads from the log (at most once per hint
   * burst; a hint may be missed across a Redis reconnect, so readers also poll now and then).
   */
  onAppend(accountId: string, listener: () => void): () => void;
  /** Every mailbox state stored for an account. */
  loadStates(accountId: string): Promise<Map<string, MailboxWatchState>>;
  /** The stored messages (key → flags) of one mailbox. */
  loadMessages(accountId: string, mailbox: string): Promise<Map<string, string[]>>;
  /** Removes an account's events and states (the account was deleted). */
  dropAccount(accountId: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Who wants an account watched. An SSE stream (and later a webhook) retains the accounts it covers
 * for as long as it is open; the watcher manager watches an account while anyone, in any process,
 * retains it.
 */
export interface WatchDemand {
  /**
   * Asks for the account to be watched; the returned function gives the request up (idempotent).
   * `onGone` is called once the account is known to be deleted (here or through another process):
   * nothing more will be stored for it, so whoever retains it should let go (a stream ends).
   */
  retain(accountId: string, onGone?: () => void): () => void;
}
