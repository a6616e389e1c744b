/**
 * Live events end to end: a listening gateway with its own watchers and event log (the embedded
 * setup: files under DATA_DIR), a real Dovecot changed by another IMAP client, and an SSE client
 * reading `/v1/accounts/{account}/events` as a backend would.
 */
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { textMessage } from '../support/messages.js';
import { testServers, type DovecotUser } from '../support/servers.js';
import { connect, type SseClient, type SseEvent } from '../support/sse-client.js';

const { dovecot } = testServers();

let gw: TestGateway;
let base: string;
let user: DovecotUser;
let account: string;
let other: ImapFlow;

beforeAll(async () => {
  user = await dovecot.createUser('live');
  await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Before' })]);
  gw = await startGateway({ EVENTS_POLL_INTERVAL_MS: '500' });
  account = await createImapAccount(gw.app, dovecot, user);
  base = await gw.app.listen({ port: 0, host: '127.0.0.1' });
  other = directImapClient(dovecot, user);
  await other.connect();
  await other.mailboxCreate('Work');
});
afterAll(async () => {
  await other?.logout().catch(() => undefined);
  await gw?.close();
});

const data = (e: SseEvent) => JSON.parse(e.data) as Record<string, unknown> & { type: string; mailbox: string | null; id: string };

async function next(stream: SseClient, match: (d: ReturnType<typeof data>) => boolean, timeoutMs = 8000): Promise<ReturnType<typeof data>> {
  let found: ReturnType<typeof data> | undefined;
  await stream.waitUntil(() => (found = stream.events.map(data).find(match)) !== undefined, timeoutMs, () => JSON.stringify(stream.events.map((e) => [e.event, data(e).mailbox])));
  return found!;
}

/** Waits until the account is watched and its first look recorded (events from then on). */
async function watched(): Promise<void> {
  await expect
    .poll(async () => (await gw.app.services.events!.log.loadStates(account)).has('Work'), { timeout: 8000 })
    .toBe(true);
}

describe('live events over SSE', () => {
  it('pushes what another client does in INBOX and another folder, and the account says it can', async () => {
    const view = (await gw.app.inject({ url: `/v1/accounts/${account}` })).json();
    expect(view.capabilities).toContain('events');
    const stream = await connect(`${base}/v1/accounts/${account}/events`);
    try {
      await watched();
      await other.append('INBOX', textMessage({ subject: 'Pushed' }));
      const arrived = await next(stream, (d) => d.type === 'message.new' && d.mailbox === 'INBOX');
      expect(arrived).toMatchObject({ account, message: { subject: 'Pushed' } });
      const sse = stream.events.find((e) => data(e).id === arrived.id)!;
      expect(sse.event).toBe('message.new');
      expect(sse.lastEventId).toBe(arrived.id);

      await other.append('Work', textMessage({ subject: 'Elsewhere' }));
      const work = await next(stream, (d) => d.type === 'message.new' && d.mailbox === 'Work');
      const message = work.message as { id: string };
      const read = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/Work/messages/${message.id}` });
      expect(read.json().subject).toBe('Elsewhere');

      await other.mailboxOpen('Work');
      await other.messageFlagsAdd({ all: true }, ['\\Seen']);
      expect(await next(stream, (d) => d.type === 'message.updated' && d.mailbox === 'Work')).toMatchObject({ flags: { added: ['\\Seen'], removed: [] } });
      await other.messageDelete({ all: true });
      expect(await next(stream, (d) => d.type === 'message.deleted' && d.mailbox === 'Work')).toMatchObject({ messageId: message.id });

      await other.mailboxCreate('Later');
      await next(stream, (d) => d.type === 'mailbox.created' && d.mailbox === 'Later');
      await other.mailboxRename('Later', 'Renamed');
      await next(stream, (d) => d.type === 'mailbox.renamed' && d.mailbox === 'Renamed' && d.from === 'Later');
      await other.mailboxDelete('Renamed');
      await next(stream, (d) => d.type === 'mailbox.deleted' && d.mailbox === 'Renamed');

      // Ordered, each once.
      const ids = stream.events.map((e) => data(e).id);
      expect(new Set(ids).size).toBe(ids.length);
    } finally {
      stream.close();
    }
  });

  it('resumes after Last-Event-ID with what happened while no stream was open, no gaps, no repeats', async () => {
    const first = await connect(`${base}/v1/accounts/${account}/events`);
    await watched();
    await other.append('INBOX', textMessage({ subject: 'Seen live' }));
    const live = await next(first, (d) => d.type === 'message.new' && (d.message as { subject: string }).subject === 'Seen live');
    first.close();
    // Nobody watches now; the changes below are found when the next stream starts the watcher.
    await expect.poll(() => gw.app.services.watchers.watching().length, { timeout: 5000 }).toBe(0);
    await other.append('Work', textMessage({ subject: 'While closed 1' }));
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'While closed 2' })]);

    const resumed = await connect(`${base}/v1/accounts/${account}/events`, { 'last-event-id': live.id });
    try {
      await next(resumed, (d) => (d.message as { subject?: string } | undefined)?.subject === 'While closed 1');
      await next(resumed, (d) => (d.message as { subject?: string } | undefined)?.subject === 'While closed 2');
      expect(resumed.events.map(data).some((d) => d.id === live.id)).toBe(false);
    } finally {
      resumed.close();
    }
  });
});
