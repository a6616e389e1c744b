/**
 * How an event is stored, the same in both backends: one JSON object `{ type, mailbox, at, ...fields }`.
 * The id is the entry's own (the stream id, or the line's `id`) and the account is the log's, so
 * neither is repeated in every entry; readers get both back as `MailEvent` members.
 */
import { EVENT_TYPES, type EventType, type MailEvent, type NewEvent } from '../types.js';

/** Members the log itself sets; a `fields` entry by one of these names is dropped, never lets it lie. */
const RESERVED = new Set(['id', 'type', 'account', 'mailbox', 'at']);
const TYPES = new Set<string>(EVENT_TYPES);

/** Refuses events no reader could take (a watcher's bug), before anything is written. */
export function checkEvents(events: readonly NewEvent[]): void {
  for (const event of events) {
    if (!TYPES.has(event.type)) throw new Error(`unknown event type ${JSON.stringify(event.type)}`);
    if (event.mailbox !== null && typeof event.mailbox !== 'string') throw new Error('an event mailbox is a path or null');
  }
}

/** The stored JSON of `event`, with `at` from the log's clock when the watcher gave none. */
export function encodeEvent(event: NewEvent, nowMs: number): string {
  if (!TYPES.has(event.type)) throw new Error(`unknown event type ${JSON.stringify(event.type)}`);
  const body: Record<string, unknown> = {
    type: event.type,
    mailbox: event.mailbox,
    at: event.at ?? new Date(nowMs).toISOString(),
  };
  for (const [name, value] of Object.entries(event.fields ?? {})) {
    if (!RESERVED.has(name)) body[name] = value;
  }
  return JSON.stringify(body);
}

/**
 * The event a stored JSON text holds, or null when it is not one (written by something else, or
 * damaged): readers skip such an entry rather than stop at it for ever.
 */
export function decodeEvent(id: string, accountId: string, text: string): MailEvent | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  return decodeEventBody(id, accountId, body);
}

/** The event an already parsed stored body is, or null when it is not one. */
export function decodeEventBody(id: string, accountId: string, body: unknown): MailEvent | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const { type, mailbox, at, ...fields } = body as Record<string, unknown>;
  if (typeof type !== 'string' || !TYPES.has(type)) return null;
  if (mailbox !== null && typeof mailbox !== 'string') return null;
  if (typeof at !== 'string') return null;
  for (const name of RESERVED) delete fields[name];
  return { id, type: type as EventType, account: accountId, mailbox, at, ...fields };
}
