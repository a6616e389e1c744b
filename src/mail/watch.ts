/**
 * What a protocol's watcher needs from the event source, and what it gives back: the seam between
 * mail/ (which knows IMAP and POP3) and events/ (which knows neither). A watcher turns what its
 * server says into events and state changes and hands them to `record`; it never holds an event
 * that was not stored.
 */
import type { MailboxWatchState, NewEvent, WatchStateChange } from '../events/types.js';

export interface WatchSink {
  /** Stores the events with the state they leave behind (one atomic write where possible). */
  record(events: NewEvent[], changes: WatchStateChange[]): Promise<void>;
  loadStates(): Promise<Map<string, MailboxWatchState>>;
  loadMessages(mailbox: string): Promise<Map<string, string[]>>;
  /** A session was lost or could not be opened; `cause` is a stable error code. */
  onReconnect?(cause: string): void;
  /**
   * The account no longer exists (ACCOUNT_NOT_FOUND, e.g. deleted through another process): the
   * watcher has stopped for good. Not awaited; not called when the watcher is stopped.
   */
  gone?(): void;
}

export interface WatchOptions {
  /** How often mailboxes other than INBOX are looked at when the server cannot push (no NOTIFY). */
  pollIntervalMs: number;
  /**
   * How often the whole folder list is compared even when the server pushes (NOTIFY), in case a
   * push was missed; also what keeps the IDLE connection from looking dead to a NAT or the server.
   */
  reconcileIntervalMs: number;
  /** How often a POP3 maildrop's UIDL list is read. */
  pop3PollIntervalMs: number;
}

export interface AccountWatch {
  /** Stops watching: the watcher's session is logged out. Resolves when it is. */
  stop(): Promise<void>;
}
