/**
 * One account's event log on disk (`DATA_DIR/events/<account dir>/`) and its copy in memory: the
 * journal segments (file-journal.ts), the state snapshot and meta (file-snapshot.ts), the last events
 * (the tail, so live readers never touch the files) and the watch state as of the last line.
 *
 * Not safe for concurrent use: FileEventLog runs every call on one account through one SerialQueue.
 *
 * Durability. A line is appended with one write and no fsync: once `append` resolved, it survives a
 * `kill -9` (it is in the kernel's page cache), not necessarily a power loss (`syncEachAppend` makes it
 * so, at the price of an fsync per append). The snapshot and the meta are written with fsync, and the
 * segment is fsynced before either, so after a power loss they never claim lines that are gone.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode, removeOrphanTempFiles, syncDir, writeFileAtomic } from '../../util/fs.js';
import type { MailboxWatchState, MailEvent, NewEvent, WatchStateChange } from '../types.js';
import { ZERO_ID, compareEventIds, formatEventId, maxEventId, nextEventId, parseEventId } from './event-id.js';
import { decodeEvent, encodeEvent } from './event-shape.js';
import { encodeLine, parseSegment, segmentFirstN, segmentName, type JournalEvent, type JournalLine } from './file-journal.js';
import { META_FILE, STATE_FILE, decodeMeta, decodeSnapshot, encodeMeta, encodeSnapshot } from './file-snapshot.js';
import { applyChanges, type MessageFlags } from './watch-state.js';

export interface FileAccountSettings {
  retentionMs: number;
  /** A segment takes lines for at most this long (by the log's clock) before a new one starts. */
  segmentSpanMs: number;
  /** … and up to this size. */
  maxSegmentBytes: number;
  /** A state snapshot is written once the journal since the last one is this large. */
  compactAfterBytes: number;
  /** Events kept in memory for readers near the end. */
  tailEvents: number;
  syncEachAppend: boolean;
  log: Logger | undefined;
}

interface Segment {
  path: string;
  firstN: number;
  /** The last line's `n`; firstN - 1 while the segment is empty. */
  lastN: number;
  /** The log's clock at its first and last line; null while empty. */
  firstT: number | null;
  lastT: number | null;
  lastEventId: string | null;
  bytes: number;
}

export class FileAccountLog {
  private segments: Segment[] = [];
  private handle: fs.FileHandle | undefined;
  private lastId = ZERO_ID;
  private lastN = 0;
  private trimmed: string | null = null;
  /** The newest events; every stored event newer than `tailFloor` is in here. */
  private tail: JournalEvent[] = [];
  private tailFloor = ZERO_ID;
  private states = new Map<string, MailboxWatchState>();
  private messages = new Map<string, MessageFlags>();
  private snapshotN = 0;
  private bytesSinceSnapshot = 0;

  private constructor(
    private readonly dir: string,
    private readonly accountId: string,
    private readonly settings: FileAccountSettings,
  ) {}

  /**
   * Reads the account's files (none yet is an empty log). A line torn by a crash at the end of the
   * newest segment is cut off; a damaged line elsewhere is skipped with a warning.
   */
  static async load(dir: string, accountId: string, settings: FileAccountSettings): Promise<FileAccountLog> {
    const account = new FileAccountLog(dir, accountId, settings);
    await account.read();
    return account;
  }

  get latestId(): string {
    return this.lastId;
  }

  /** Whether events newer than `afterId` were deleted by retention. */
  lost(afterId: string): boolean {
    return this.trimmed !== null && compareEventIds(afterId, this.trimmed) < 0;
  }

  /** Events after `afterId` from memory, or null when they may reach back past the tail. */
  readTail(afterId: string, limit: number): MailEvent[] | null {
    if (compareEventIds(afterId, this.tailFloor) < 0) return null;
    let from = this.tail.length;
    while (from > 0 && compareEventIds(this.tail[from - 1]!.id, afterId) > 0) from--;
    return this.decode(this.tail.slice(from, from + limit));
  }

  /** Events after `afterId` read from the segments (a reader far behind). */
  async readSegments(afterId: string, limit: number): Promise<MailEvent[]> {
    const found: JournalEvent[] = [];
    for (const segment of this.segments) {
      if (segment.lastEventId === null || compareEventIds(segment.lastEventId, afterId) <= 0) continue;
      const data = await readOptional(segment.path);
      if (data === null) continue;
      for (const line of parseSegment(data).lines) {
        for (const event of line.events) {
          if (compareEventIds(event.id, afterId) > 0) found.push(event);
          if (found.length >= limit) return this.decode(found);
        }
      }
    }
    return this.decode(found);
  }

  loadStates(): Map<string, MailboxWatchState> {
    return new Map([...this.states].map(([mailbox, state]) => [mailbox, { ...state }]));
  }

  loadMessages(mailbox: string): Map<string, string[]> {
    return new Map([...(this.messages.get(mailbox) ?? [])].map(([key, flags]) => [key, [...flags]]));
  }

  /**
   * Writes one line holding the events and the changes, then brings memory up to date. Throws when
   * the line could not be written; it is then cut off again, and the caller reloads before going on.
   */
  async append(events: readonly NewEvent[], changes: readonly WatchStateChange[], nowMs: number): Promise<MailEvent[]> {
    let last = parseEventId(this.lastId);
    const journalEvents: JournalEvent[] = events.map((event) => {
      last = nextEventId(last, nowMs);
      return { id: formatEventId(last), text: encodeEvent(event, nowMs) };
    });
    const active = await this.activeSegment(nowMs);
    const n = this.lastN + 1;
    const line = encodeLine(n, nowMs, journalEvents, changes);
    const handle = this.handle!;
    try {
      await handle.appendFile(line, 'utf8');
      if (this.settings.syncEachAppend) await handle.datasync();
    } catch (err) {
      await handle.truncate(active.bytes).catch(() => undefined);
      throw err;
    }
    const bytes = Buffer.byteLength(line);
    active.bytes += bytes;
    this.noteLine(active, { n, t: nowMs, events: journalEvents, changes: [...changes], bytes }, true);
    this.lastN = n;
    this.lastId = journalEvents.at(-1)?.id ?? this.lastId;
    this.bytesSinceSnapshot += bytes;
    return this.decode(journalEvents);
  }

  /**
   * Deletes whole segments all of whose lines are older than the retention (never the one being
   * written), after making sure the snapshot covers them and meta.json remembers the newest event id
   * deleted; writes a snapshot when the journal since the last one grew large. Never fails an append:
   * what could not be done now is tried after the next one.
   */
  async housekeep(nowMs: number): Promise<void> {
    try {
      await this.applyRetention(nowMs);
      if (this.bytesSinceSnapshot >= this.settings.compactAfterBytes) await this.compact();
    } catch (err) {
      this.settings.log?.warn({ err: { message: (err as Error).message }, account: this.accountId }, 'event log housekeeping failed; retried after the next append');
    }
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => undefined);
  }

  private async applyRetention(nowMs: number): Promise<void> {
    const cutoffMs = nowMs - this.settings.retentionMs;
    let count = 0;
    // A prefix only: what is deleted is always "everything up to some line", which `trimmed` can say.
    while (count < this.segments.length - 1) {
      const segment = this.segments[count]!;
      if (segment.lastT !== null && segment.lastT >= cutoffMs) break;
      count++;
    }
    if (count === 0) return;
    const doomed = this.segments.slice(0, count);
    const coveredN = doomed.at(-1)!.lastN;
    if (this.snapshotN < coveredN) await this.compact();
    let trimmed = this.trimmed;
    for (const segment of doomed) {
      if (segment.lastEventId !== null) trimmed = trimmed === null ? segment.lastEventId : maxEventId(trimmed, segment.lastEventId);
    }
    if (trimmed !== this.trimmed) {
      await this.handle?.sync();
      await writeFileAtomic(this.dir, path.join(this.dir, META_FILE), encodeMeta({ trimmed, last: this.lastId, n: this.lastN }));
      this.trimmed = trimmed;
    }
    for (const segment of doomed) await fs.rm(segment.path, { force: true });
    this.segments = this.segments.slice(count);
    if (trimmed !== null) this.tail = this.tail.filter((event) => compareEventIds(event.id, trimmed) > 0);
  }

  private async compact(): Promise<void> {
    // The lines the snapshot covers reach the disk before the snapshot says they did.
    await this.handle?.sync();
    const text = encodeSnapshot({ n: this.lastN, lastId: this.lastId, states: this.states, messages: this.messages });
    await writeFileAtomic(this.dir, path.join(this.dir, STATE_FILE), text);
    this.snapshotN = this.lastN;
    this.bytesSinceSnapshot = 0;
  }

  /** The segment the next line goes to, with its file open: a new one when the current is full or old. */
  private async activeSegment(nowMs: number): Promise<Segment> {
    let active = this.segments.at(-1);
    const empty = active !== undefined && active.lastN < active.firstN;
    const due =
      active === undefined ||
      (!empty &&
        (active.bytes >= this.settings.maxSegmentBytes || (active.firstT !== null && nowMs - active.firstT >= this.settings.segmentSpanMs)));
    if (due) {
      await this.close();
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      const firstN = this.lastN + 1;
      active = { path: path.join(this.dir, segmentName(firstN)), firstN, lastN: firstN - 1, firstT: null, lastT: null, lastEventId: null, bytes: 0 };
      this.segments.push(active);
    }
    if (this.handle === undefined) {
      this.handle = await fs.open(active!.path, 'a', 0o600);
      if (due && this.settings.syncEachAppend) await syncDir(this.dir);
    }
    return active!;
  }

  /** Takes a line (read at load, or just written) into the segment's summary, the tail and the state. */
  private noteLine(segment: Segment, line: JournalLine, applyState: boolean): void {
    segment.lastN = line.n;
    segment.firstT ??= line.t;
    segment.lastT = line.t;
    for (const event of line.events) this.tail.push(event);
    segment.lastEventId = line.events.at(-1)?.id ?? segment.lastEventId;
    // Trimmed in batches, so keeping the tail costs no copy per append.
    if (this.tail.length >= this.settings.tailEvents * 2) {
      const dropped = this.tail.length - this.settings.tailEvents;
      this.tailFloor = this.tail[dropped - 1]!.id;
      this.tail = this.tail.slice(dropped);
    }
    if (applyState) applyChanges(this.states, this.messages, line.changes);
  }

  private decode(events: readonly JournalEvent[]): MailEvent[] {
    const out: MailEvent[] = [];
    for (const event of events) {
      const decoded = decodeEvent(event.id, this.accountId, event.text);
      if (decoded !== null) out.push(decoded);
    }
    return out;
  }

  private async read(): Promise<void> {
    const log = this.settings.log;
    const metaText = await readOptional(path.join(this.dir, META_FILE));
    const meta = metaText === null ? null : decodeMeta(metaText.toString('utf8'));
    if (metaText !== null && meta === null) log?.warn({ account: this.accountId }, 'event log meta.json is unreadable; ignored');
    const stateText = await readOptional(path.join(this.dir, STATE_FILE));
    const snapshot = stateText === null ? null : decodeSnapshot(stateText.toString('utf8'));
    if (stateText !== null && snapshot === null) log?.warn({ account: this.accountId }, 'event log state.json is unreadable; ignored');
    // One process per data directory, and nothing of this account was written yet: temp files are orphans.
    await removeOrphanTempFiles(this.dir, STATE_FILE);
    await removeOrphanTempFiles(this.dir, META_FILE);

    if (meta !== null) {
      this.trimmed = meta.trimmed;
      this.lastId = meta.last;
      this.lastN = meta.n;
    }
    if (snapshot !== null) {
      this.states = snapshot.states;
      this.messages = snapshot.messages;
      this.snapshotN = snapshot.n;
      this.lastId = maxEventId(this.lastId, snapshot.lastId);
      this.lastN = Math.max(this.lastN, snapshot.n);
    }

    const files = (await readDirOptional(this.dir))
      .map((name) => ({ name, firstN: segmentFirstN(name) }))
      .filter((file): file is { name: string; firstN: number } => file.firstN !== null)
      .sort((a, b) => a.firstN - b.firstN);
    // Without a snapshot the state can be rebuilt only from a journal that still starts at line 1.
    const replay = snapshot !== null || ((files[0]?.firstN ?? 1) === 1 && this.trimmed === null);
    if (!replay) {
      log?.warn({ account: this.accountId }, 'event log state snapshot missing while the journal was trimmed; mailboxes will be looked at afresh');
    }

    // What the journal itself says is newest, checked line by line: numbers and ids only increase.
    let seenN = 0;
    let seenId = ZERO_ID;
    for (const [index, file] of files.entries()) {
      const filePath = path.join(this.dir, file.name);
      const data = await readOptional(filePath);
      if (data === null) continue;
      const parsed = parseSegment(data);
      const newest = index === files.length - 1;
      let bytes = data.length;
      if (parsed.tornTail && newest) {
        // The end of a line whose write a crash interrupted: that append never completed, drop it.
        await fs.truncate(filePath, parsed.goodBytes);
        bytes = parsed.goodBytes;
        log?.warn({ account: this.accountId, file: file.name }, 'event log: dropped a line torn by a crash');
      }
      let skipped = parsed.damaged + (parsed.tornTail && !newest ? 1 : 0);
      const segment: Segment = { path: filePath, firstN: file.firstN, lastN: file.firstN - 1, firstT: null, lastT: null, lastEventId: null, bytes };
      for (const line of parsed.lines) {
        if (line.n <= seenN || !idsFollow(seenId, line.events)) {
          skipped++;
          continue;
        }
        seenN = line.n;
        seenId = line.events.at(-1)?.id ?? seenId;
        const applyState = replay && line.n > this.snapshotN;
        this.noteLine(segment, line, applyState);
        if (applyState) this.bytesSinceSnapshot += line.bytes;
      }
      if (skipped > 0) log?.warn({ account: this.accountId, file: file.name, lines: skipped }, 'event log: skipped damaged lines');
      this.segments.push(segment);
    }
    this.lastN = Math.max(this.lastN, seenN);
    this.lastId = maxEventId(this.lastId, seenId);
    if (!replay) {
      // The state starts afresh from here: later lines apply on top of "nothing known".
      this.states = new Map();
      this.messages = new Map();
      this.snapshotN = this.lastN;
    }
  }
}

/** Whether `events` have increasing ids, all newer than `after`. */
function idsFollow(after: string, events: readonly JournalEvent[]): boolean {
  let previous = after;
  for (const event of events) {
    if (compareEventIds(event.id, previous) <= 0) return false;
    previous = event.id;
  }
  return true;
}

async function readOptional(file: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
}

async function readDirOptional(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}
