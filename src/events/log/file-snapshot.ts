/**
 * The two small files beside an account's journal segments, each written whole and atomically
 * (src/util/fs.ts: temp file, fsync, rename, fsync of the directory):
 *
 * - `state.json`, the state snapshot: every mailbox state and message known after journal line `n`.
 *   At load the state is this plus the changes of the lines after `n`. Written when the journal since
 *   the last one has grown past a bound, and before any segment it covers is deleted, so the journal
 *   never has to be kept for the state's sake.
 * - `meta.json`: `trimmed` (the newest event id retention deleted, what tells a resume point lost),
 *   `last` and `n` (the newest id and line ever written, so ids keep increasing even if the segments
 *   holding them are gone). Written before segments are deleted.
 */
import type { MailboxWatchState } from '../types.js';
import { isValidEventId } from './event-id.js';
import { isFlagList, isWatchState, pickState, type MessageFlags } from './watch-state.js';

export const STATE_FILE = 'state.json';
export const META_FILE = 'meta.json';
const VERSION = 1;

export interface StateSnapshot {
  /** The last journal line whose changes are in here. */
  n: number;
  lastId: string;
  states: Map<string, MailboxWatchState>;
  messages: Map<string, MessageFlags>;
}

export interface LogMeta {
  trimmed: string | null;
  last: string;
  n: number;
}

export function encodeSnapshot(snapshot: StateSnapshot): string {
  return `${JSON.stringify({
    version: VERSION,
    n: snapshot.n,
    lastId: snapshot.lastId,
    // Arrays of pairs, not objects: a key such as "__proto__" stays data whatever reads the file.
    states: [...snapshot.states],
    messages: [...snapshot.messages].map(([mailbox, flags]) => [mailbox, [...flags]]),
  })}\n`;
}

/** The snapshot a file's text holds, or null when it is not one. */
export function decodeSnapshot(text: string): StateSnapshot | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { version, n, lastId, states, messages } = value as Record<string, unknown>;
  if (version !== VERSION || !isLineNumber(n) || typeof lastId !== 'string' || !isValidEventId(lastId)) return null;
  if (!Array.isArray(states) || !Array.isArray(messages)) return null;
  const snapshot: StateSnapshot = { n, lastId, states: new Map(), messages: new Map() };
  for (const pair of states as unknown[]) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !isWatchState(pair[1])) return null;
    snapshot.states.set(pair[0], pickState(pair[1]));
  }
  for (const pair of messages as unknown[]) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !Array.isArray(pair[1])) return null;
    const flagsByKey: MessageFlags = new Map();
    for (const entry of pair[1] as unknown[]) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string') return null;
      if (!isFlagList(entry[1])) return null;
      flagsByKey.set(entry[0], entry[1]);
    }
    snapshot.messages.set(pair[0], flagsByKey);
  }
  return snapshot;
}

export function encodeMeta(meta: LogMeta): string {
  return `${JSON.stringify({ version: VERSION, trimmed: meta.trimmed, last: meta.last, n: meta.n })}\n`;
}

export function decodeMeta(text: string): LogMeta | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { version, trimmed, last, n } = value as Record<string, unknown>;
  if (version !== VERSION || !isLineNumber(n) || typeof last !== 'string' || !isValidEventId(last)) return null;
  if (trimmed !== null && (typeof trimmed !== 'string' || !isValidEventId(trimmed))) return null;
  return { trimmed, last, n };
}

function isLineNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
