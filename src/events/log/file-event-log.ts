/**
 * The event log under `DATA_DIR/events/` for the embedded setup (no Redis, one process per data
 * directory). Per account a directory (account-dir.ts) holding journal segments of JSON lines, a
 * state snapshot and a little meta (file-account.ts, file-journal.ts, file-snapshot.ts).
 *
 * - One line per append holds its events and its state changes, so they are stored together or not
 *   at all: a crash (even `kill -9` in the middle of a write) leaves either the whole line or a torn
 *   one that the next start cuts off, as if that append had never been made. A watcher that restarts
 *   then finds the state as of the last whole line and reports whatever came after it again: at least
 *   once, never lost. (Power loss: see `syncEachAppend`.)
 * - Ids are `<ms>-<seq>` by this log's clock, strictly increasing per account even when the clock
 *   goes backwards (the last id is read back from the journal, or from meta.json once retention
 *   deleted the segments holding it).
 * - Retention deletes whole segments (a segment spans at most `segmentSpanMs`, 1 h by default), so an
 *   event is kept for at least the retention and at most one span longer. Segments are deleted only
 *   when appending (and when an account is first read): the files of an account nobody writes to any
 *   more stay until `dropAccount`.
 * - Every operation on one account runs in turn (one SerialQueue per account); a reader near the end
 *   is answered from memory (the last `tailEvents` events) without waiting behind writes.
 * - `onAppend` is in-process only: one process writes and reads this directory.
 * - The state of every account read so far is kept in memory (about 100 bytes per known message).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { GatewayError, isGatewayError } from '../../errors.js';
import { SerialQueue } from '../../util/serial-queue.js';
import type { EventLog, MailboxWatchState, MailEvent, NewEvent, ReadResult, WatchStateChange } from '../types.js';
import { accountDirName } from './account-dir.js';
import { AppendListeners } from './append-listeners.js';
import { isValidEventId } from './event-id.js';
import { checkEvents } from './event-shape.js';
import { FileAccountLog, type FileAccountSettings } from './file-account.js';
import { checkRead } from './read-args.js';
import { checkChanges } from './watch-state.js';

export const EVENTS_DIR = 'events';

export interface FileEventLogOptions {
  /** The gateway's data directory; the log lives in its `events/` folder. */
  dataDir: string;
  /** How long events are kept (`EVENTS_RETENTION_SECONDS` in ms), by this log's clock. */
  retentionMs: number;
  /** The clock of ids, `at` and retention (ms since the epoch; default Date.now). */
  now?: () => number;
  /** Events per account kept in memory for readers near the end (default 1,000). */
  tailEvents?: number;
  /** Longest time one segment takes lines (default: a 24th of the retention, at most 1 h). */
  segmentSpanMs?: number;
  /** Largest segment before the next starts (default 8 MiB). */
  maxSegmentBytes?: number;
  /** A state snapshot is written once the journal since the last has grown by this (default 4 MiB). */
  compactAfterBytes?: number;
  /**
   * fsync every appended line (default false). Without it an append survives a crash of the process
   * (`kill -9`) but the last few seconds of appends may be lost with a power loss or kernel crash;
   * events and their state changes are then lost together, never one without the other.
   */
  syncEachAppend?: boolean;
  /** Where damaged files and failed housekeeping are reported. */
  log?: Logger;
}

const DEFAULT_TAIL_EVENTS = 1_000;
const MAX_SEGMENT_SPAN_MS = 3_600_000;
const DEFAULT_MAX_SEGMENT_BYTES = 8 * 1024 * 1024;
const DEFAULT_COMPACT_AFTER_BYTES = 4 * 1024 * 1024;

export class FileEventLog implements EventLog {
  readonly dir: string;
  private readonly settings: FileAccountSettings;
  private readonly now: () => number;
  private readonly accounts = new Map<string, FileAccountLog>();
  private readonly queues = new Map<string, SerialQueue>();
  private readonly listeners = new AppendListeners();
  private closed = false;

  constructor(options: FileEventLogOptions) {
    if (!(options.retentionMs >= 1)) throw new Error('retentionMs must be at least 1');
    this.dir = path.join(options.dataDir, EVENTS_DIR);
    this.now = options.now ?? Date.now;
    this.settings = {
      retentionMs: options.retentionMs,
      segmentSpanMs: options.segmentSpanMs ?? Math.max(1, Math.min(MAX_SEGMENT_SPAN_MS, Math.floor(options.retentionMs / 24))),
      maxSegmentBytes: options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES,
      compactAfterBytes: options.compactAfterBytes ?? DEFAULT_COMPACT_AFTER_BYTES,
      tailEvents: Math.max(1, options.tailEvents ?? DEFAULT_TAIL_EVENTS),
      syncEachAppend: options.syncEachAppend ?? false,
      log: options.log,
    };
  }

  async append(accountId: string, events: NewEvent[], changes: WatchStateChange[] = []): Promise<MailEvent[]> {
    // Checked when the write is asked for: writes queued before close() still complete.
    if (this.closed) throw new Error('event log is closed');
    checkEvents(events);
    checkChanges(changes);
    if (events.length === 0 && changes.length === 0) return [];
    return this.run(accountId, 'write', async (account) => {
      const nowMs = this.now();
      let stored: MailEvent[];
      try {
        stored = await account.append(events, changes, nowMs);
      } catch (err) {
        // Read the files afresh before the next operation: memory may no longer match them.
        await this.forget(accountId);
        throw err;
      }
      if (stored.length > 0) this.listeners.hint(accountId);
      await account.housekeep(nowMs);
      return stored;
    });
  }

  async readAfter(accountId: string, afterId: string, limit: number): Promise<ReadResult> {
    checkRead(afterId, limit);
    // A reader near the end is answered from memory, without waiting behind the account's writes.
    const loaded = this.accounts.get(accountId);
    const fromTail = loaded === undefined ? null : loaded.readTail(afterId, limit);
    if (loaded !== undefined && fromTail !== null) return { events: fromTail, lost: loaded.lost(afterId) };
    return this.run(accountId, 'read', async (account) => {
      const events = account.readTail(afterId, limit) ?? (await account.readSegments(afterId, limit));
      return { events, lost: account.lost(afterId) };
    });
  }

  async latestId(accountId: string): Promise<string> {
    return this.accounts.get(accountId)?.latestId ?? this.run(accountId, 'read', async (account) => account.latestId);
  }

  isValidId(id: string): boolean {
    return isValidEventId(id);
  }

  onAppend(accountId: string, listener: () => void): () => void {
    return this.listeners.add(accountId, listener);
  }

  loadStates(accountId: string): Promise<Map<string, MailboxWatchState>> {
    return this.run(accountId, 'read', async (account) => account.loadStates());
  }

  loadMessages(accountId: string, mailbox: string): Promise<Map<string, string[]>> {
    return this.run(accountId, 'read', async (account) => account.loadMessages(mailbox));
  }

  async dropAccount(accountId: string): Promise<void> {
    if (this.closed) throw new Error('event log is closed');
    return this.queue(accountId).run(async () => {
      await this.forget(accountId);
      try {
        await fs.rm(this.accountDir(accountId), { recursive: true, force: true });
      } catch (err) {
        throw new GatewayError('SERVICE_UNAVAILABLE', 'the event log could not be written', { cause: err });
      }
    });
  }

  /** Waits for pending operations and closes the files; later writes are refused. */
  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    await Promise.all([...this.queues.values()].map((queue) => queue.idle()));
    await Promise.all([...this.accounts.values()].map((account) => account.close()));
    this.accounts.clear();
  }

  private accountDir(accountId: string): string {
    return path.join(this.dir, accountDirName(accountId));
  }

  private queue(accountId: string): SerialQueue {
    let queue = this.queues.get(accountId);
    if (queue === undefined) this.queues.set(accountId, (queue = new SerialQueue()));
    return queue;
  }

  /** Runs `op` on the account in turn with its other operations, reading its files first if needed. */
  private run<T>(accountId: string, kind: 'read' | 'write', op: (account: FileAccountLog) => Promise<T>): Promise<T> {
    return this.queue(accountId).run(async () => {
      try {
        return await op(await this.open(accountId));
      } catch (err) {
        if (isGatewayError(err)) throw err;
        throw new GatewayError('SERVICE_UNAVAILABLE', `the event log could not be ${kind === 'read' ? 'read' : 'written'}`, { cause: err });
      }
    });
  }

  private async open(accountId: string): Promise<FileAccountLog> {
    let account = this.accounts.get(accountId);
    if (account === undefined) {
      account = await FileAccountLog.load(this.accountDir(accountId), accountId, this.settings);
      this.accounts.set(accountId, account);
      await account.housekeep(this.now());
    }
    return account;
  }

  private async forget(accountId: string): Promise<void> {
    const account = this.accounts.get(accountId);
    this.accounts.delete(accountId);
    await account?.close();
  }
}
