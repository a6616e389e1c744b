/**
 * The watcher's remembered state, the same in both backends: per mailbox a `MailboxWatchState`, and
 * per mailbox its messages (UID or UIDL → flags). Pure helpers: checking a batch of changes, applying
 * it to maps, and the JSON each value is stored as.
 *
 * Within one `WatchStateChange` the order is: `state: null` drops the mailbox (its `set`/`remove` are
 * then moot); else `replace` empties its messages, then `set`, then `remove`. Changes of one batch
 * apply in the order given, so two changes of one mailbox in a batch behave as two batches would.
 */
import type { MailboxWatchState, WatchStateChange } from '../types.js';

/** A mailbox's messages: UID or UIDL → flags. */
export type MessageFlags = Map<string, string[]>;

/**
 * Refuses a batch the stores could not keep faithfully, before anything is written. An empty message
 * key is refused because the Redis layout uses the field "" as its presence marker (and neither a UID
 * nor a UIDL, RFC 1939 section 7, is ever empty).
 */
export function checkChanges(changes: readonly WatchStateChange[]): void {
  for (const change of changes) {
    if (typeof change.mailbox !== 'string' || change.mailbox === '') throw new Error('a state change needs a mailbox path');
    if (change.state !== null && !isWatchState(change.state)) throw new Error(`state of ${change.mailbox} is malformed`);
    for (const [key, flags] of change.set ?? []) {
      if (typeof key !== 'string' || key === '') throw new Error(`a message key of ${change.mailbox} is empty`);
      if (!Array.isArray(flags) || !flags.every((flag) => typeof flag === 'string')) {
        throw new Error(`flags of message ${key} in ${change.mailbox} are not a list of strings`);
      }
    }
    for (const key of change.remove ?? []) {
      if (typeof key !== 'string' || key === '') throw new Error(`a message key of ${change.mailbox} is empty`);
    }
  }
}

/** Applies `changes` to in-memory copies (file backend; also what the Redis script does, key by key). */
export function applyChanges(
  states: Map<string, MailboxWatchState>,
  messages: Map<string, MessageFlags>,
  changes: readonly WatchStateChange[],
): void {
  for (const change of changes) {
    if (change.state === null) {
      states.delete(change.mailbox);
      messages.delete(change.mailbox);
      continue;
    }
    states.set(change.mailbox, pickState(change.state));
    let known = messages.get(change.mailbox);
    if (known === undefined || change.replace === true) messages.set(change.mailbox, (known = new Map()));
    for (const [key, flags] of change.set ?? []) known.set(key, [...flags]);
    for (const key of change.remove ?? []) known.delete(key);
  }
}

export function encodeState(state: MailboxWatchState): string {
  return JSON.stringify({
    uidValidity: state.uidValidity,
    uidNext: state.uidNext,
    highestModseq: state.highestModseq,
    messages: state.messages,
  });
}

/** The state a stored JSON text holds, or null when it is not one. */
export function decodeState(text: string): MailboxWatchState | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return isWatchState(value) ? pickState(value) : null;
}

/** Flags as stored (a JSON array of strings), or null when the text is not that. */
export function decodeFlags(text: string): string[] | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return isFlagList(value) ? value : null;
}

export function isFlagList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((flag) => typeof flag === 'string');
}

export function isWatchState(value: unknown): value is MailboxWatchState {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.uidValidity === 'string' &&
    typeof v.uidNext === 'number' &&
    Number.isFinite(v.uidNext) &&
    (v.highestModseq === null || typeof v.highestModseq === 'string') &&
    typeof v.messages === 'number' &&
    Number.isFinite(v.messages)
  );
}

/** A copy with only the members a state has. */
export function pickState(state: MailboxWatchState): MailboxWatchState {
  return { uidValidity: state.uidValidity, uidNext: state.uidNext, highestModseq: state.highestModseq, messages: state.messages };
}
