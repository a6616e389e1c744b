/**
 * Event ids, the same in both backends: `<ms>-<seq>` as Redis Streams issue them
 * (https://redis.io/docs/latest/develop/data-types/streams/#entry-ids), where `ms` is a Unix time in
 * milliseconds and `seq` counts events within that millisecond. Ids are compared as the pair of
 * numbers, never as strings (`9-0` < `10-0`).
 *
 * The accepted syntax is `^(0|[1-9][0-9]{0,14})-(0|[1-9][0-9]{0,14})$`: decimal, no sign, no leading
 * zero, at most 15 digits each. That covers every id either backend issues (13 digits of ms until the
 * year 2286; a seq above 15 digits would need 10^15 events in one millisecond) and `0-0`, and keeps both
 * parts below 2^53, so they compare exactly as JavaScript numbers.
 */

export interface EventId {
  ms: number;
  seq: number;
}

/** What `latestId` answers for an account without events: "start from now". */
export const ZERO_ID = '0-0';

const ID_PATTERN = /^(0|[1-9][0-9]{0,14})-(0|[1-9][0-9]{0,14})$/;

/** Whether `id` is one a log could have issued (syntax only). */
export function isValidEventId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** Parses a valid id; throws on anything else (callers check `isValidEventId` first). */
export function parseEventId(id: string): EventId {
  const match = ID_PATTERN.exec(id);
  if (match === null) throw new Error(`not an event id: ${JSON.stringify(id)}`);
  return { ms: Number(match[1]), seq: Number(match[2]) };
}

export function formatEventId(id: EventId): string {
  return `${id.ms}-${id.seq}`;
}

/** Negative, zero or positive as `a` is older than, the same as or newer than `b`. */
export function compareEventIds(a: string, b: string): number {
  const x = parseEventId(a);
  const y = parseEventId(b);
  return x.ms !== y.ms ? x.ms - y.ms : x.seq - y.seq;
}

/** The newer of two ids. */
export function maxEventId(a: string, b: string): string {
  return compareEventIds(a, b) >= 0 ? a : b;
}

/**
 * The id after `last` at clock time `nowMs`, as Redis issues them: the clock's millisecond when it is
 * past `last`'s, else `last`'s millisecond with the next seq. So ids keep increasing while the clock
 * stands still or goes backwards (NTP steps, a restored VM), at the cost of ids running ahead of it.
 */
export function nextEventId(last: EventId, nowMs: number): EventId {
  const ms = Math.floor(nowMs);
  return ms > last.ms ? { ms, seq: 0 } : { ms: last.ms, seq: last.seq + 1 };
}
