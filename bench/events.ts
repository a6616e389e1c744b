/**
 * What rows (j) and (k) share: change a mailbox behind the gateway's back (another IMAP client, as a
 * phone would), and time how long until the change is seen, on the gateway's event stream or by a
 * bare imapflow client IDLEing on the same INBOX. A sample's clock starts just before the APPEND is
 * sent; both observers run in this process, so both pay the same event loop.
 */
import type { ImapFlow } from 'imapflow';
import { randomBytes } from 'node:crypto';
import type { DovecotUser } from '../test/support/dovecot.js';
import { textMessage } from '../test/support/messages.js';
import { connect, type SseClient, type SseEvent } from '../test/support/sse-client.js';
import { openImap, type MailServers } from './servers.js';

export interface EventData {
  id: string;
  type: string;
  account: string;
  mailbox: string | null;
  message?: { subject?: string };
}

export const eventData = (event: SseEvent): EventData => JSON.parse(event.data) as EventData;

/** Opens an event stream (an account's, or `/v1/events`) that must answer 200. */
export const openEvents = connect;

/** A client of the bench's own that changes mailboxes (connected, nothing selected). */
export const changer = openImap;

/** A unique subject, so a sample's event is told from every other. */
export const sampleSubject = (label: string): string => `${label} ${randomBytes(6).toString('hex')}`;

/** Appends a message with `subject` to `mailbox`; answers performance.now() just before it was sent. */
export async function appendAt(client: ImapFlow, mailbox: string, subject: string): Promise<number> {
  const message = textMessage({ subject });
  const startMs = performance.now();
  await client.append(mailbox, message);
  return startMs;
}

/** When the stream delivered the `message.new` with `subject` (performance.now()); waits up to `timeoutMs`. */
export async function sseArrival(stream: SseClient, subject: string, timeoutMs: number): Promise<number> {
  let found: SseEvent | undefined;
  await stream.waitUntil(
    () => (found = stream.events.find((e) => e.event === 'message.new' && eventData(e).message?.subject === subject)) !== undefined,
    timeoutMs,
    () => `no message.new for "${subject}" (${stream.events.length} events so far)`,
  );
  return found!.receivedAtMs;
}

/**
 * Waits until the watcher of `client`'s account reports changes: a first look records what is there
 * without events (API.md: changes from the start of watching on), so a message appended before it
 * would never be an event. Appends a probe every `everyMs` until one arrives on `stream`.
 */
export async function untilReporting(stream: SseClient, client: ImapFlow, timeoutMs: number, everyMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const probes: string[] = [];
  for (;;) {
    const subject = sampleSubject('probe');
    probes.push(subject);
    await appendAt(client, 'INBOX', subject);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no event for any of ${probes.length} probes within ${timeoutMs} ms`);
    try {
      await stream.waitUntil(() => stream.events.some((e) => probes.includes(eventData(e).message?.subject ?? '')), Math.min(everyMs, left));
      return;
    } catch {
      // not reporting yet: another probe
    }
  }
}

/**
 * A bare imapflow client with INBOX selected and IDLE running (RFC 2177): the floor for "a change
 * in INBOX is seen". `nextExists()` resolves at the next EXISTS the server pushes.
 */
export class BareIdler {
  private waiters: Array<(atMs: number) => void> = [];

  private constructor(private readonly client: ImapFlow) {
    client.on('exists', () => {
      const atMs = performance.now();
      for (const resolve of this.waiters.splice(0)) resolve(atMs);
    });
  }

  static async start(servers: Pick<MailServers, 'dovecot'>, user: DovecotUser): Promise<BareIdler> {
    const client = await openImap(servers, user);
    await client.mailboxOpen('INBOX');
    void client.idle().catch(() => undefined);
    return new BareIdler(client);
  }

  nextExists(timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no EXISTS within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((atMs) => {
        clearTimeout(timer);
        resolve(atMs);
      });
    });
  }

  async stop(): Promise<void> {
    await this.client.logout().catch(() => undefined);
  }
}

/** The value of one unlabelled gauge or counter on the gateway's /metrics, or NaN. */
export async function metricValue(gatewayUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return match ? Number(match[1]) : NaN;
}

/** Quantile of `values` (nearest rank), NaN when empty. */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
