/**
 * The one interface both protocols implement. Services call it; nothing above it knows IMAP or
 * POP3 command names, nothing below it knows HTTP.
 */
import type { Readable } from 'node:stream';
import type { MailAccount } from './account.js';
import type { MessageRef } from './message-id.js';
import type { AccountWatch, WatchOptions, WatchSink } from './watch.js';
import type { ParsedAttachment } from './mime/types.js';
import type {
  ByteRange,
  Capability,
  ExpectedStates,
  FlagChanges,
  ListQuery,
  ListResult,
  MailboxChanges,
  MailboxChangesResult,
  MailboxInfo,
  MessageLocation,
  MessageSummary,
} from './types.js';

export type RangeSelector = (size: number) => ByteRange | undefined;

export interface RawMessage {
  /** Size of the whole message in bytes (RFC822.SIZE / LIST). */
  size: number;
  /** The bytes `stream` carries; the whole message when no range was picked. */
  range: ByteRange;
  /** The requested bytes; ends when they are all sent. Destroying it returns the session. */
  stream: Readable;
}

export interface PartStream {
  stream: Readable;
  size: number | null;
  /** The part's declared charset, for text parts (the bytes are not converted). */
  charset?: string | undefined;
  /** Set when the bytes are still in this transfer encoding: one the gateway does not know how to undo. */
  transferEncoding?: string | undefined;
}

export interface MailBackend {
  /** Logs in once (and out) to check an account's settings and credentials; answers its capabilities. */
  verify(account: MailAccount): Promise<Capability[]>;
  /** What this account can do, from the last session the gateway had with its server. */
  capabilities(accountId: string): Capability[] | null;
  /** The same, falling back to what the protocol always offers when no session has told yet. */
  capabilitiesOf(accountId: string): Capability[];
  listMailboxes(accountId: string, options: { counts: boolean }): Promise<MailboxInfo[]>;
  listMessages(accountId: string, mailbox: string, query: ListQuery): Promise<ListResult>;
  /** Flags and envelope of one message; with `markSeen`, sets `\Seen` first. */
  getSummary(accountId: string, mailbox: string, ref: MessageRef, options: { markSeen: boolean }): Promise<MessageSummary>;
  /**
   * Streams the message's exact bytes, or the range `rangeFor` picks once the size is known
   * (it may throw, e.g. for an unsatisfiable range, before any byte is fetched).
   */
  openRaw(accountId: string, mailbox: string, ref: MessageRef, rangeFor?: RangeSelector): Promise<RawMessage>;
  /** Streams one MIME part decoded (transfer encoding undone), by IMAP part number. */
  /**
   * One attachment's decoded bytes. `parsed` is what the message view says of it (its type, file
   * name and size from the gateway's parse): a backend whose server numbers parts itself serves that
   * part only when it is this one (decision 0018).
   */
  openPart(accountId: string, mailbox: string, ref: MessageRef, partId: string, parsed?: Pick<ParsedAttachment, 'contentType' | 'filename' | 'size'>): Promise<PartStream>;
  /**
   * Removes one message for good (IMAP: `\Deleted` + UID EXPUNGE; POP3: DELE committed by QUIT).
   * With `expected` (a write's If-Match), only while one of those listing states is current; else
   * PRECONDITION_FAILED and nothing is written (decision 0010). So for the two writes below.
   */
  deleteMessage(accountId: string, mailbox: string, ref: MessageRef, expected?: ExpectedStates): Promise<void>;

  // What only some protocols have; absent means NOT_SUPPORTED_BY_PROTOCOL (decided in MailService).
  /** Created, updated and destroyed messages since a listing's or an earlier answer's `state`. */
  changesSince?(accountId: string, mailbox: string, since: string, limit: number): Promise<MailboxChangesResult>;
  updateFlags?(accountId: string, mailbox: string, ref: MessageRef, changes: FlagChanges, expected?: ExpectedStates): Promise<MessageSummary>;
  moveMessage?(accountId: string, mailbox: string, ref: MessageRef, destination: string, expected?: ExpectedStates): Promise<MessageLocation>;
  copyMessage?(accountId: string, mailbox: string, ref: MessageRef, destination: string): Promise<MessageLocation>;
  appendMessage?(accountId: string, mailbox: string, content: Buffer, flags: string[]): Promise<MessageLocation>;
  createMailbox?(accountId: string, path: string): Promise<MailboxInfo>;
  updateMailbox?(accountId: string, path: string, changes: MailboxChanges): Promise<MailboxInfo>;
  deleteMailbox?(accountId: string, path: string): Promise<void>;

  /**
   * Starts watching an account (API.md, Events): the watcher stores what changes through `sink`
   * until stopped. One process watches an account at a time (src/events decides which).
   */
  watch?(accountId: string, sink: WatchSink, options: WatchOptions): AccountWatch;

  /** Cache key of the message's immutable parsed form. */
  parsedCacheKey(accountId: string, mailbox: string, ref: MessageRef): string;
  /** Closes the account's sessions (LOGOUT / QUIT) after a delete or a change of its settings. */
  dropAccount(accountId: string): Promise<void>;
  close(): Promise<void>;
}
