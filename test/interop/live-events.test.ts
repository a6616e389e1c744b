/**
 * Live events once per server: `events` is in every IMAP account's capabilities, so what another client
 * does must reach an SSE stream on each — in INBOX (IDLE) and in another folder (STATUS or LIST-STATUS
 * polls), with and without CONDSTORE.
 */
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { data, waitForEvent, type EventData } from '../support/live-stream.js';
import { createMailUser, folderPath, mailServers, type MailServer } from '../support/mail-servers.js';
import { textMessage } from '../support/messages.js';
import { connect, type SseClient } from '../support/sse-client.js';

describe.each(mailServers().map((server) => [server.kind, server] as const))('%s: live events', (_kind, server: MailServer) => {
  let gw: TestGateway;
  let base: string;
  let account: string;
  let other: ImapFlow;
  let stream: SseClient | undefined;
  const work = folderPath(server, 'Work');

  beforeAll(async () => {
    const user = await createMailUser(server, 'live');
    other = directImapClient(server, user);
    await other.connect();
    await other.mailboxCreate(work);
    gw = await startGateway({ EVENTS_POLL_INTERVAL_MS: '500' });
    account = await createImapAccount(gw.app, server as never, user);
    base = await gw.app.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    stream?.close();
    await other?.logout().catch(() => undefined);
    await gw?.close();
  });

  const next = (match: (d: EventData) => boolean, what: string): Promise<EventData> => waitForEvent(stream!, match, what);

  it('pushes another client\'s changes in INBOX and in another folder', async () => {
    const view = (await gw.app.inject({ url: `/v1/accounts/${account}` })).json() as { capabilities: string[] };
    expect(view.capabilities).toContain('events');
    stream = await connect(`${base}/v1/accounts/${account}/events`);
    await expect.poll(async () => (await gw.app.services.events!.log.loadStates(account)).has(work), { timeout: 10_000 }).toBe(true);

    await other.append('INBOX', textMessage({ subject: 'Pushed' }));
    expect(await next((d) => d.type === 'message.new' && d.mailbox === 'INBOX', 'message.new in INBOX')).toMatchObject({ message: { subject: 'Pushed' } });

    await other.append(work, textMessage({ subject: 'Elsewhere' }));
    const arrived = await next((d) => d.type === 'message.new' && d.mailbox === work, `message.new in ${work}`);
    const id = (arrived.message as { id: string }).id;
    const read = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${encodeURIComponent(work)}/messages/${id}` });
    expect((read.json() as { subject: string }).subject).toBe('Elsewhere');

    await other.mailboxOpen(work);
    await other.messageFlagsAdd({ all: true }, ['\\Flagged']);
    expect(await next((d) => d.type === 'message.updated' && d.mailbox === work, `message.updated in ${work}`)).toMatchObject({
      flags: { added: ['\\Flagged'], removed: [] },
    });
    await other.messageDelete({ all: true });
    expect(await next((d) => d.type === 'message.deleted' && d.mailbox === work, `message.deleted in ${work}`)).toMatchObject({ messageId: id });
    await other.mailboxOpen('INBOX');

    const later = folderPath(server, 'Later');
    await other.mailboxCreate(later);
    await next((d) => d.type === 'mailbox.created' && d.mailbox === later, `mailbox.created ${later}`);
    // Events are ordered per account: none came twice.
    const ids = stream.events.map((e) => data(e).id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
