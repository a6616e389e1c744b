/**
 * Reading and writing through the gateway, once per server (Dovecot, Cyrus, Courier): capabilities,
 * the mailbox list, APPEND with flags, the listing, the message view, raw bytes, flag changes seen by
 * another client, move, copy and delete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { createMailUser, folderPath, mailServers, traits, type MailServer } from '../support/mail-servers.js';
import { messageWithAttachment, textMessage } from '../support/messages.js';
import type { DovecotUser } from '../support/servers.js';

describe.each(mailServers().map((server) => [server.kind, server] as const))('%s: read and write', (_kind, server: MailServer) => {
  let gw: TestGateway;
  let user: DovecotUser;
  let account: string;
  const base = (): string => `/v1/accounts/${account}/mailboxes`;
  const inbox = (): string => `${base()}/INBOX/messages`;

  beforeAll(async () => {
    user = await createMailUser(server, 'rw');
    gw = await startGateway();
    account = await createImapAccount(gw.app, server as never, user);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('tells the capabilities this server supports, and only those', async () => {
    const view = (await gw.app.inject({ url: `/v1/accounts/${account}` })).json() as { capabilities: string[] };
    const facts = traits[server.kind];
    expect(view.capabilities.includes('changes')).toBe(facts.qresync);
    // Without MOVE a move is COPY + STORE \Deleted + UID EXPUNGE, which every server here can do (UIDPLUS).
    expect(view.capabilities).toEqual(expect.arrayContaining(['folders', 'flags', 'search', 'move', 'copy', 'append']));
  });

  it('appends with one flag given as a single query value, and lists, shows and serves the message', async () => {
    const source = textMessage({ subject: `hello from ${server.kind}`, body: 'Grüße, line one\r\n.dot-leading line' });
    const res = await gw.app.inject({ method: 'POST', url: `${inbox()}?flags=%5CSeen`, headers: { 'content-type': 'message/rfc822' }, payload: source });
    expect(res.statusCode, res.body).toBe(201);
    const { id } = res.json() as { id: string };

    const page = (await gw.app.inject({ url: inbox() })).json() as { messages: Array<{ id: string; subject: string; flags: string[]; seen: boolean }>; total: number };
    const listed = page.messages.find((m) => m.id === id);
    expect(listed).toMatchObject({ subject: `hello from ${server.kind}`, seen: true });
    expect(listed!.flags).toEqual(['\\Seen']);

    const view = (await gw.app.inject({ url: `${inbox()}/${id}` })).json() as { text: string; from: Array<{ address: string }> };
    expect(view.text).toContain('Grüße, line one');
    expect(view.from[0]!.address).toBe('sender@example.com');

    const raw = await gw.app.inject({ url: `${inbox()}/${id}/raw` });
    expect(raw.statusCode).toBe(200);
    expect(raw.rawPayload.equals(source)).toBe(true);
  });

  it('serves an attachment decoded', async () => {
    const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
    const res = await gw.app.inject({ method: 'POST', url: inbox(), headers: { 'content-type': 'message/rfc822' }, payload: messageWithAttachment({ subject: 'with file', filename: 'data.bin', content: bytes }) });
    expect(res.statusCode, res.body).toBe(201);
    const { id } = res.json() as { id: string };
    const view = (await gw.app.inject({ url: `${inbox()}/${id}` })).json() as { attachments: Array<{ id: string }>; hasAttachments: boolean };
    expect(view.attachments).toHaveLength(1);
    const part = await gw.app.inject({ url: `${inbox()}/${id}/attachments/${view.attachments[0]!.id}` });
    expect(part.statusCode).toBe(200);
    expect(part.rawPayload.equals(bytes)).toBe(true);
  });

  it('changes flags so that another client sees them', async () => {
    const created = await gw.app.inject({ method: 'POST', url: inbox(), headers: { 'content-type': 'message/rfc822' }, payload: textMessage({ subject: 'to flag' }) });
    const { id } = created.json() as { id: string };
    const patched = await gw.app.inject({ method: 'PATCH', url: `${inbox()}/${id}`, payload: { flagged: true, addFlags: ['$Work'] } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect((patched.json() as { flags: string[] }).flags).toEqual(expect.arrayContaining(['\\Flagged', '$Work']));
    const uid = (patched.json() as { uid: number }).uid;
    const other = directImapClient(server, user);
    await other.connect();
    await other.mailboxOpen('INBOX');
    const seen = await other.fetchOne(String(uid), { flags: true }, { uid: true });
    await other.logout();
    expect(seen && [...(seen.flags ?? [])]).toEqual(expect.arrayContaining(['\\Flagged', '$Work']));
  });

  it('moves, copies and deletes', async () => {
    const folder = await gw.app.inject({ method: 'POST', url: base(), payload: { path: 'Archive' } });
    expect(folder.statusCode, folder.body).toBe(201);
    const archive = (folder.json() as { path: string }).path;
    expect(archive).toBe(folderPath(server, 'Archive'));
    const make = async (subject: string): Promise<string> =>
      ((await gw.app.inject({ method: 'POST', url: inbox(), headers: { 'content-type': 'message/rfc822' }, payload: textMessage({ subject }) })).json() as { id: string }).id;

    const toMove = await make('to move');
    const moved = await gw.app.inject({ method: 'POST', url: `${inbox()}/${toMove}/move`, payload: { destination: archive } });
    expect(moved.statusCode, moved.body).toBe(200);
    const movedTo = moved.json() as { id: string; mailbox: string };
    expect(movedTo.mailbox).toBe(archive);
    expect((await gw.app.inject({ url: `${inbox()}/${toMove}` })).statusCode).toBe(404);
    const there = await gw.app.inject({ url: `${base()}/${encodeURIComponent(archive)}/messages/${movedTo.id}` });
    expect((there.json() as { subject: string }).subject).toBe('to move');

    const toCopy = await make('to copy');
    const copied = await gw.app.inject({ method: 'POST', url: `${inbox()}/${toCopy}/copy`, payload: { destination: archive } });
    expect(copied.statusCode, copied.body).toBe(201);
    expect((await gw.app.inject({ url: `${inbox()}/${toCopy}` })).statusCode).toBe(200);

    const deleted = await gw.app.inject({ method: 'DELETE', url: `${inbox()}/${toCopy}` });
    expect(deleted.statusCode).toBe(204);
    expect((await gw.app.inject({ url: `${inbox()}/${toCopy}` })).statusCode).toBe(404);
    const copyThere = await gw.app.inject({ url: `${base()}/${encodeURIComponent(archive)}/messages/${(copied.json() as { id: string }).id}` });
    expect(copyThere.statusCode).toBe(200);
  });
});
