/**
 * Reading an event stream the way the process-level tests of live events do: the events' JSON,
 * a short description of each to compare, waiting for one, and waiting until a watcher is live.
 */
import type { ImapFlow } from 'imapflow';
import { textMessage } from './messages.js';
import type { SseClient, SseEvent } from './sse-client.js';

export type EventData = Record<string, unknown> & { id: string; type: string; account: string; mailbox: string | null };

export const data = (e: SseEvent): EventData => JSON.parse(e.data) as EventData;

export const subjectOf = (d: EventData): string | undefined => (d.message as { subject?: string } | undefined)?.subject;

/** What a test compares: the type, the mailbox and what the event is about (a subject, a message id, flags). */
export function describeEvent(d: EventData): string {
  if (d.type === 'message.deleted') return `${d.type} ${d.mailbox} ${String(d.messageId)}`;
  if (d.type === 'message.updated') {
    const flags = d.flags as { added: string[]; removed: string[] };
    return `${d.type} ${d.mailbox} ${subjectOf(d)} +${flags.added.join(',')} -${flags.removed.join(',')}`;
  }
  return `${d.type} ${d.mailbox} ${subjectOf(d) ?? ''}`;
}

export const described = (stream: SseClient): string[] => stream.events.map((e) => describeEvent(data(e)));

/** Waits for an event matching `match` and answers it. */
export async function waitForEvent(stream: SseClient, match: (d: EventData) => boolean, what: string, timeoutMs = 20_000): Promise<EventData> {
  let found: EventData | undefined;
  await stream.waitUntil(
    () => (found = stream.events.map(data).find(match)) !== undefined,
    timeoutMs,
    () => `${what} missing from ${JSON.stringify(described(stream))}`,
  );
  return found!;
}

/**
 * Waits until the stream's account is watched past its first look (which records what is there
 * without events) and answers the event of the last probe: appends probes to INBOX until one is
 * reported, then waits for the last one appended. A probe before the first look is part of it (no
 * event), one after it is reported, so nothing else is pending once the last probe's event is in.
 */
export async function firstLiveEvent(stream: SseClient, other: ImapFlow, prefix = 'Probe', timeoutMs = 25_000): Promise<EventData> {
  const isProbe = (d: EventData): boolean => subjectOf(d)?.startsWith(`${prefix} `) === true;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let probe = 1; ; probe++) {
    last = `${prefix} ${probe}`;
    await other.append('INBOX', textMessage({ subject: last }));
    try {
      await stream.waitUntil(() => stream.events.some((e) => isProbe(data(e))), 1_500);
      break;
    } catch (err) {
      if (/ended/.test((err as Error).message)) throw err;
      if (Date.now() > deadline) throw new Error(`no probe reported within ${timeoutMs} ms (${probe} appended); events: ${JSON.stringify(described(stream))}`);
    }
  }
  const subject = last;
  return waitForEvent(stream, (d) => subjectOf(d) === subject, subject);
}
