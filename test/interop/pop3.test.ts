/**
 * POP3 accounts once per server: the listing (newest first), the message view, raw bytes as the server
 * serves them, DELE committed by QUIT, and filters refused as POP3 cannot do them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPop3Account, startGateway, type TestGateway } from '../support/gateway.js';
import { createMailUser, mailServers, seedMessages, type MailServer } from '../support/mail-servers.js';
import { textMessage } from '../support/messages.js';

interface Page {
  messages: Array<{ id: string; subject: string; size: number }>;
  total: number;
}

describe.each(mailServers().map((server) => [server.kind, server] as const))('%s: POP3', (_kind, server: MailServer) => {
  let gw: TestGateway;
  let url: string;
  const sources = [1, 2, 3].map((i) => textMessage({ subject: `pop ${i}`, body: `Body ${i}\r\n.leading dot` }));

  beforeAll(async () => {
    const user = await createMailUser(server, 'pop');
    await seedMessages(server, user, sources);
    gw = await startGateway();
    const account = await createPop3Account(gw.app, server as never, user);
    url = `/v1/accounts/${account}/mailboxes/INBOX/messages`;
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('lists newest first, shows a message and serves its bytes', async () => {
    const res = await gw.app.inject({ url });
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json() as Page;
    expect(page.messages.map((m) => m.subject)).toEqual(['pop 3', 'pop 2', 'pop 1']);
    expect(page.total).toBe(3);
    const view = (await gw.app.inject({ url: `${url}/${page.messages[1]!.id}` })).json() as { subject: string; text: string };
    expect(view.subject).toBe('pop 2');
    expect(view.text).toContain('.leading dot');
    const raw = await gw.app.inject({ url: `${url}/${page.messages[0]!.id}/raw` });
    expect(raw.statusCode).toBe(200);
    expect(raw.rawPayload.equals(sources[2]!)).toBe(true);
  });

  it('deletes a message for good, and refuses filters', async () => {
    const page = (await gw.app.inject({ url })).json() as Page;
    const victim = page.messages.find((m) => m.subject === 'pop 1')!;
    const del = await gw.app.inject({ method: 'DELETE', url: `${url}/${victim.id}` });
    expect(del.statusCode, del.body).toBe(204);
    const after = (await gw.app.inject({ url })).json() as Page;
    expect(after.messages.map((m) => m.subject)).toEqual(['pop 3', 'pop 2']);
    expect((await gw.app.inject({ url: `${url}/${victim.id}` })).statusCode).toBe(404);
    const filtered = await gw.app.inject({ url: `${url}?seen=true` });
    expect(filtered.statusCode).toBe(422);
    expect(filtered.json()).toMatchObject({ code: 'NOT_SUPPORTED_BY_PROTOCOL' });
  });
});
