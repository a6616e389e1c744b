/**
 * `since` / `before` are days (API.md, Messages): IMAP SINCE / BEFORE on INTERNALDATE's calendar day,
 * the same answer on every call. imapflow turns them into WITHIN's YOUNGER / OLDER seconds (RFC 5032)
 * counted from the gateway's clock when the server has WITHIN, as Dovecot does; the gateway's sessions
 * therefore do not offer imapflow the capability.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectImap } from '../../src/mail/imap/connect.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { textMessage } from '../support/messages.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot } = testServers();
let user: DovecotUser;
let gw: TestGateway;
let account: string;

beforeAll(async () => {
  user = await dovecot.createUser('dates');
  const imap = directImapClient(dovecot, user);
  await imap.connect();
  // Arrived late on 1 March in New York, which is 2 March in UTC.
  for (const [subject, internalDate] of [['feb', '2024-02-28T12:00:00Z'], ['late-march-1', '2024-03-01T23:30:00-05:00'], ['march-3', '2024-03-03T08:00:00Z']] as const) {
    await imap.append('INBOX', textMessage({ subject }), [], new Date(internalDate));
  }
  await imap.logout();
  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, user);
});

afterAll(async () => {
  await gw?.close();
});

describe('date filters', () => {
  it('reach the server as SINCE / BEFORE days, never as WITHIN seconds, although the server has WITHIN', async () => {
    const direct = directImapClient(dovecot, user);
    await direct.connect();
    expect(direct.capabilities.has('WITHIN')).toBe(true);
    await direct.logout();
    const session = await connectImap(
      { id: 'x', protocol: 'imap', host: dovecot.host, port: dovecot.imapPort, security: 'none', username: user.username, credentials: { password: user.password }, tlsVerify: false },
      { egress: createEgressPolicy(['127.0.0.0/8']), timeoutMs: 5_000, socketTimeoutMs: 60_000, log: pino({ level: 'silent' }) },
    );
    expect(session.capabilities.has('WITHIN')).toBe(false);
    await session.logout();
  });

  it('give the same answer on repeated calls, by calendar day', async () => {
    const subjects = async (query: string): Promise<string[]> => {
      const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages?${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as { messages: Array<{ subject: string }> }).messages.map((m) => m.subject).sort();
    };
    const first = await subjects('since=2024-03-01&before=2024-03-03');
    expect(first).toContain('late-march-1');
    expect(first).not.toContain('feb');
    expect(first).not.toContain('march-3');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await subjects('since=2024-03-01&before=2024-03-03')).toEqual(first);
    expect(await subjects('before=2024-03-01')).toEqual(['feb']);
  });
});
