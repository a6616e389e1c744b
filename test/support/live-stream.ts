/**
 * Reading an event stream the way the process-level tests of live events do: the events' JSON,
 * a short description of each to compare, waiting for one, waiting until a watcher is live, and
 * what those test files open (accounts, mail clients, streams).
 */
import type { ImapFlow } from 'imapflow';
import { imapAccountBody, type TestGateway } from './gateway.js';
import { directImapClient } from './imap-client.js';
import { textMessage } from './messages.js';
import type { DovecotUser, ProvidedDovecot } from './servers.js';
import { connect, type SseClient, type SseEvent, type StreamAnswer } from './sse-client.js';

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

/** How the stream ended, or 'still open' after `timeoutMs`. */
export function endedWithin(stream: SseClient, timeoutMs = 10_000): Promise<'end' | 'aborted' | 'still open'> {
  return Promise.race([stream.ended, new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), timeoutMs).unref())]);
}

/** A stream request that must be refused, as an inject-like response for expectProblem. */
export async function refusal(answer: Promise<StreamAnswer>): Promise<{ statusCode: number; headers: Record<string, unknown>; json: () => unknown; body: string }> {
  const got = await answer;
  if ('stream' in got) {
    got.stream.close();
    throw new Error('expected a refusal, got a stream');
  }
  return { statusCode: got.status, headers: got.headers, body: got.body, json: () => JSON.parse(got.body) };
}

/**
 * What a test file opens against in-process gateways and the run's Dovecot (accounts, mail clients
 * of its own, streams), closed together at the end.
 */
export class LiveEventsKit {
  private readonly streams: SseClient[] = [];
  private readonly clients: ImapFlow[] = [];

  constructor(
    private readonly dovecot: ProvidedDovecot,
    private readonly headers: Record<string, string>,
  ) {}

  async addAccount(gw: TestGateway, user: DovecotUser, id: string): Promise<void> {
    const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', headers: this.headers, payload: imapAccountBody(this.dovecot, user, { id }) });
    if (res.statusCode !== 201) throw new Error(`account create failed: ${res.statusCode} ${res.body}`);
  }

  /** Another mail client of `user`, connected. */
  async mailClient(user: DovecotUser): Promise<ImapFlow> {
    const client = directImapClient(this.dovecot, user);
    await client.connect();
    this.clients.push(client);
    return client;
  }

  async open(url: string, headers: Record<string, string> = this.headers): Promise<SseClient> {
    const stream = await connect(url, headers);
    this.streams.push(stream);
    return stream;
  }

  async close(): Promise<void> {
    for (const stream of this.streams.splice(0)) stream.close();
    await Promise.all(this.clients.splice(0).map((c) => c.logout().catch(() => undefined)));
  }
}
