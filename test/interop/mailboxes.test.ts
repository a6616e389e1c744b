/**
 * Mailbox administration once per server. Cyrus and Courier send no RFC 5530 response codes
 * (ALREADYEXISTS, NONEXISTENT) with their refusals, and Courier answers OK to a RENAME of a missing
 * mailbox: the gateway must still answer 409 / 404 naming the right mailbox, never 502.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { imapCommands, quoted } from '../support/imap-commands.js';
import { createMailUser, folderPath, mailServers, traits, type MailServer } from '../support/mail-servers.js';
import type { DovecotUser } from '../support/servers.js';

describe.each(mailServers().map((server) => [server.kind, server] as const))('%s: mailboxes', (_kind, server: MailServer) => {
  let gw: TestGateway;
  let user: DovecotUser;
  let account: string;
  const base = (): string => `/v1/accounts/${account}/mailboxes`;
  const named = (path: string): string => `${base()}/${encodeURIComponent(path)}`;

  beforeAll(async () => {
    user = await createMailUser(server, 'boxes');
    gw = await startGateway();
    account = await createImapAccount(gw.app, server as never, user);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('lists INBOX, and a special use from the server\'s attribute, or from the name marked as guessed', async () => {
    // A Sent folder made by another client: with CREATE-SPECIAL-USE (RFC 6154 §3) under a name no guess
    // would take where the server has it (Cyrus), by name where it has no attributes (Courier). The test
    // Dovecot has its own, configured with `special_use`.
    const other = directImapClient(server, user);
    await other.connect();
    const createSpecialUse = other.capabilities.has('CREATE-SPECIAL-USE');
    const expectedSent = server.kind === 'dovecot' ? 'Sent' : folderPath(server, createSpecialUse ? 'Outbound' : 'Sent');
    await other.logout();
    if (createSpecialUse) await imapCommands(server.imapPort, [`LOGIN ${quoted(user.username)} ${quoted(user.password)}`, `CREATE ${quoted(expectedSent)} (USE (\\Sent))`]);
    else if (server.kind !== 'dovecot') await imapCommands(server.imapPort, [`LOGIN ${quoted(user.username)} ${quoted(user.password)}`, `CREATE ${quoted(expectedSent)}`]);

    const res = await gw.app.inject({ url: `${base()}?counts=true` });
    expect(res.statusCode).toBe(200);
    const { mailboxes } = res.json() as { mailboxes: Array<{ path: string; delimiter: string; specialUse: string | null; specialUseSource: string | null; counts: { messages: number } }> };
    const inbox = mailboxes.find((m) => m.path === 'INBOX');
    expect(inbox).toMatchObject({ delimiter: traits[server.kind].delimiter, specialUse: '\\Inbox', specialUseSource: 'name', counts: { messages: 0 } });
    const sent = mailboxes.find((m) => m.specialUse === '\\Sent');
    expect(sent).toMatchObject({ path: expectedSent, specialUseSource: traits[server.kind].specialUse ? 'attribute' : 'name' });
    for (const m of mailboxes.filter((m) => m.specialUse === null)) expect(m.specialUseSource).toBeNull();
  });

  it('creates, renames and deletes', async () => {
    const created = await gw.app.inject({ method: 'POST', url: base(), payload: { path: 'Projects' } });
    expect(created.statusCode, created.body).toBe(201);
    const path = (created.json() as { path: string }).path;
    expect(path).toBe(folderPath(server, 'Projects'));
    const renamed = await gw.app.inject({ method: 'PATCH', url: named(path), payload: { path: folderPath(server, 'Projects-2024') } });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect((renamed.json() as { path: string }).path).toBe(folderPath(server, 'Projects-2024'));
    const deleted = await gw.app.inject({ method: 'DELETE', url: named(folderPath(server, 'Projects-2024')) });
    expect(deleted.statusCode, deleted.body).toBe(204);
    const list = (await gw.app.inject({ url: base() })).json() as { mailboxes: Array<{ path: string }> };
    expect(list.mailboxes.map((m) => m.path)).not.toContain(folderPath(server, 'Projects-2024'));
  });

  it('answers 409 MAILBOX_EXISTS for a mailbox that exists already', async () => {
    expect((await gw.app.inject({ method: 'POST', url: base(), payload: { path: 'Twice' } })).statusCode).toBe(201);
    const again = await gw.app.inject({ method: 'POST', url: base(), payload: { path: 'Twice' } });
    expect(again.statusCode, again.body).toBe(409);
    expect(again.json()).toMatchObject({ code: 'MAILBOX_EXISTS' });
  });

  it('answers 409 MAILBOX_EXISTS for a rename onto a mailbox that exists, and changes nothing', async () => {
    for (const path of ['From-here', 'Taken']) expect((await gw.app.inject({ method: 'POST', url: base(), payload: { path } })).statusCode).toBe(201);
    const res = await gw.app.inject({ method: 'PATCH', url: named(folderPath(server, 'From-here')), payload: { path: folderPath(server, 'Taken') } });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json()).toMatchObject({ code: 'MAILBOX_EXISTS' });
    expect((res.json() as { detail: string }).detail).toContain(folderPath(server, 'Taken'));
    const list = (await gw.app.inject({ url: base() })).json() as { mailboxes: Array<{ path: string }> };
    expect(list.mailboxes.map((m) => m.path)).toEqual(expect.arrayContaining([folderPath(server, 'From-here'), folderPath(server, 'Taken')]));
  });

  it('answers 404 MAILBOX_NOT_FOUND naming the missing mailbox for a rename or delete of one', async () => {
    const missing = folderPath(server, 'Never-was');
    const rename = await gw.app.inject({ method: 'PATCH', url: named(missing), payload: { path: folderPath(server, 'Still-not') } });
    expect(rename.statusCode, rename.body).toBe(404);
    expect(rename.json()).toMatchObject({ code: 'MAILBOX_NOT_FOUND' });
    expect((rename.json() as { detail: string }).detail).toContain(missing);
    const list = (await gw.app.inject({ url: base() })).json() as { mailboxes: Array<{ path: string }> };
    expect(list.mailboxes.map((m) => m.path)).not.toContain(folderPath(server, 'Still-not'));

    const del = await gw.app.inject({ method: 'DELETE', url: named(missing) });
    expect(del.statusCode, del.body).toBe(404);
    expect(del.json()).toMatchObject({ code: 'MAILBOX_NOT_FOUND' });
  });
});
