import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServers, type DovecotUser } from '../support/servers.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { messageWithAttachment, textMessage } from '../support/messages.js';

const { dovecot } = testServers();

let gw: TestGateway;
let user: DovecotUser;
let account: string;
const attachment = randomBytes(5000);

function pop3Body(security: 'none' | 'starttls' | 'tls') {
  return {
    protocol: 'pop3',
    host: dovecot.host,
    port: security === 'tls' ? dovecot.pop3sPort : dovecot.pop3Port,
    security,
    username: user.username,
    password: user.password,
    tlsVerify: false,
  };
}

beforeAll(async () => {
  user = await dovecot.createUser('pop3api');
  await dovecot.seedMaildir(user.username, [
    ...Array.from({ length: 7 }, (_, i) => textMessage({ subject: `P${i + 1}` })),
    messageWithAttachment({ subject: 'With file', filename: 'data.bin', content: attachment }),
  ]);
  gw = await startGateway();
  const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: pop3Body('none') });
  expect(res.statusCode, res.body).toBe(201);
  // POP3 accounts are watched by UIDL polls, so events is their one capability.
  expect(res.json()).toMatchObject({ protocol: 'pop3', capabilities: ['events'] });
  account = res.json().id;
});
afterAll(async () => gw?.close());

const base = () => `/v1/accounts/${account}/mailboxes`;

describe('a POP3 account through the same routes', () => {
  it('verifies over STLS and implicit TLS too', async () => {
    for (const security of ['starttls', 'tls'] as const) {
      const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: pop3Body(security) });
      expect(res.statusCode, `${security}: ${res.body}`).toBe(201);
    }
    const wrong = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: { ...pop3Body('none'), password: 'nope' } });
    expect(wrong.statusCode).toBe(422);
    expect(wrong.json().code).toBe('UPSTREAM_AUTH_FAILED');
  });

  it('has exactly one mailbox, INBOX', async () => {
    const res = await gw.app.inject({ url: base() });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().mailboxes.map((m: { path: string }) => m.path)).toEqual(['INBOX']);
  });

  it('lists newest first with a cursor, opens, downloads raw and attachments', async () => {
    const first = await gw.app.inject({ url: `${base()}/INBOX/messages?limit=5` });
    expect(first.statusCode, first.body).toBe(200);
    const page = first.json();
    expect(page.total).toBe(8);
    expect(page.messages.map((m: { subject: string }) => m.subject)).toEqual(['With file', 'P7', 'P6', 'P5', 'P4']);
    const second = (await gw.app.inject({ url: `${base()}/INBOX/messages?limit=5&cursor=${encodeURIComponent(page.nextCursor)}` })).json();
    expect(second.messages.map((m: { subject: string }) => m.subject)).toEqual(['P3', 'P2', 'P1']);
    expect(second.nextCursor).toBeNull();

    const id = page.messages[0].id as string;
    const msg = (await gw.app.inject({ url: `${base()}/INBOX/messages/${id}` })).json();
    expect(msg.subject).toBe('With file');
    expect(msg.attachments).toHaveLength(1);
    const raw = await gw.app.inject({ url: `${base()}/INBOX/messages/${id}/raw` });
    expect(raw.statusCode).toBe(200);
    expect(Number(raw.headers['content-length'])).toBe(raw.rawPayload.length);
    const file = await gw.app.inject({ url: `${base()}/INBOX/messages/${id}/attachments/${msg.attachments[0].id}` });
    expect(file.statusCode).toBe(200);
    expect(file.rawPayload.equals(attachment)).toBe(true);
  });

  it('answers 422 NOT_SUPPORTED_BY_PROTOCOL for what POP3 cannot do', async () => {
    const id = (await gw.app.inject({ url: `${base()}/INBOX/messages?limit=1` })).json().messages[0].id as string;
    const calls = [
      { method: 'PATCH' as const, url: `${base()}/INBOX/messages/${id}`, payload: { seen: true } },
      { method: 'POST' as const, url: `${base()}/INBOX/messages/${id}/move`, payload: { destination: 'X' } },
      { method: 'POST' as const, url: `${base()}/INBOX/messages/${id}/copy`, payload: { destination: 'X' } },
      { method: 'POST' as const, url: base(), payload: { path: 'X' } },
      { method: 'GET' as const, url: `${base()}/INBOX/messages?seen=false` },
      { method: 'GET' as const, url: `${base()}/INBOX/changes?since=abc` },
    ];
    for (const call of calls) {
      const res = await gw.app.inject(call);
      expect(res.statusCode, `${call.method} ${call.url}`).toBe(422);
      expect(res.json().code).toBe('NOT_SUPPORTED_BY_PROTOCOL');
    }
    const append = await gw.app.inject({
      method: 'POST',
      url: `${base()}/INBOX/messages`,
      headers: { 'content-type': 'message/rfc822' },
      payload: textMessage({ subject: 'no' }),
    });
    expect(append.json().code).toBe('NOT_SUPPORTED_BY_PROTOCOL');
  });

  it('deletes with DELE committed by QUIT before the 204', async () => {
    const page = (await gw.app.inject({ url: `${base()}/INBOX/messages?limit=200` })).json();
    const victim = page.messages.find((m: { subject: string }) => m.subject === 'P1');
    const res = await gw.app.inject({ method: 'DELETE', url: `${base()}/INBOX/messages/${victim.id}` });
    expect(res.statusCode, res.body).toBe(204);
    // Checked from outside, as another client would.
    const status = await dovecot.doveadm(['mailbox', 'status', '-u', user.username, 'messages', 'INBOX']);
    expect(status).toContain('messages=7');
    const after = (await gw.app.inject({ url: `${base()}/INBOX/messages?limit=200` })).json();
    expect(after.messages.map((m: { subject: string }) => m.subject)).not.toContain('P1');
    const again = await gw.app.inject({ method: 'DELETE', url: `${base()}/INBOX/messages/${victim.id}` });
    expect(again.json().code).toBe('MESSAGE_NOT_FOUND');
  });
});
