/**
 * The file event log's journal: per account, segment files of JSON lines, one line per append.
 *
 * A line holds a whole append, its events and the state changes they explain:
 *   {"n":12,"t":1700000000000,"events":[["1700000000000-0",{"type":…,"mailbox":…,"at":…}]],"changes":[…]}
 * `n` numbers the lines of the account (1, 2, …; a state snapshot says up to which line it covers), `t`
 * is the log's clock when it was written (what retention ages by), `events` pairs each id with its
 * stored body (event-shape.ts). Because the line is the unit, an append is all or nothing: a line torn
 * by a crash is dropped at load, events and state changes together.
 *
 * Segments are named by the `n` of their first line, zero-padded (`000000000000001.jsonl`), so the
 * names sort in journal order.
 */
import type { WatchStateChange } from '../types.js';
import { isValidEventId } from './event-id.js';
import { checkChanges, pickState } from './watch-state.js';

export interface JournalEvent {
  id: string;
  /** The stored body's JSON text (event-shape.ts). */
  text: string;
}

export interface JournalLine {
  n: number;
  t: number;
  events: JournalEvent[];
  changes: WatchStateChange[];
  /** The line's length in the file, newline included. */
  bytes: number;
}

export interface ParsedSegment {
  lines: JournalLine[];
  /** Length in bytes of the part up to the end of the last good line. */
  goodBytes: number;
  /** Lines that could not be read, followed by good ones (damage, not a crash). */
  damaged: number;
  /** Whether bytes follow the last good line (a line torn by a crash, on the newest segment). */
  tornTail: boolean;
}

const SEGMENT_NAME = /^(\d{15})\.jsonl$/;

export function segmentName(firstN: number): string {
  return `${String(firstN).padStart(15, '0')}.jsonl`;
}

/** The first line number a segment file name stands for, or null when the name is not a segment's. */
export function segmentFirstN(name: string): number | null {
  const match = SEGMENT_NAME.exec(name);
  return match ? Number(match[1]) : null;
}

/** One journal line, newline included. Event bodies go in as the texts they are stored as. */
export function encodeLine(n: number, t: number, events: readonly JournalEvent[], changes: readonly WatchStateChange[]): string {
  const pairs = events.map((event) => `[${JSON.stringify(event.id)},${event.text}]`).join(',');
  return `{"n":${n},"t":${t},"events":[${pairs}],"changes":${JSON.stringify(changes.map(plainChange))}}\n`;
}

/**
 * The lines of a segment's text. Only newline-terminated lines count; whatever follows the last line
 * that parses is a torn tail (the caller truncates it on the newest segment).
 */
export function parseSegment(data: Buffer): ParsedSegment {
  const lines: JournalLine[] = [];
  let goodBytes = 0;
  let bad = 0;
  let damaged = 0;
  let start = 0;
  for (;;) {
    const end = data.indexOf(0x0a, start);
    if (end === -1) break;
    const line = parseLine(data.toString('utf8', start, end), end + 1 - start);
    start = end + 1;
    if (line === null) {
      bad++;
      continue;
    }
    damaged += bad;
    bad = 0;
    lines.push(line);
    goodBytes = start;
  }
  return { lines, goodBytes, damaged, tornTail: goodBytes < data.length };
}

function parseLine(text: string, bytes: number): JournalLine | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { n, t, events, changes } = value as Record<string, unknown>;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) return null;
  if (typeof t !== 'number' || !Number.isFinite(t)) return null;
  if (!Array.isArray(events) || !Array.isArray(changes)) return null;
  const journalEvents: JournalEvent[] = [];
  for (const pair of events as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2) return null;
    const [id, body] = pair as [unknown, unknown];
    if (typeof id !== 'string' || !isValidEventId(id) || typeof body !== 'object' || body === null) return null;
    journalEvents.push({ id, text: JSON.stringify(body) });
  }
  try {
    checkChanges(changes as WatchStateChange[]);
  } catch {
    return null;
  }
  return { n, t, events: journalEvents, changes: changes as WatchStateChange[], bytes };
}

/** Only the members a change has, so nothing a caller hung on it reaches the file. */
function plainChange(change: WatchStateChange): WatchStateChange {
  const plain: WatchStateChange = { mailbox: change.mailbox, state: change.state === null ? null : pickState(change.state) };
  if (change.state === null) return plain;
  if (change.replace === true) plain.replace = true;
  if (change.set !== undefined && change.set.length > 0) plain.set = change.set;
  if (change.remove !== undefined && change.remove.length > 0) plain.remove = change.remove;
  return plain;
}
