/**
 * Listings once per server: a state (ETag) that depends only on the mailbox, never on the session that
 * built it; If-None-Match answered 304 while nothing changed and never after another client's change;
 * date filters by calendar day with the same answer on every call; delta sync where the server has
 * QRESYNC.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectImap } from '../../src/mail/imap/connect.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { createMailUser, mailServers, seedMessages, traits, type MailServer } from '../support/mail-servers.js';
import { textMessage } from '../support/messages.js';
import type { DovecotUser } from '../support/servers.js';

interface Page {
  messages: Array<{ id: string; uid: number; subject: string; flags: string[] }>;
  state: string;
  total: number;
}

describe.each(mailServers().map((server) => [server.kind, server] as const))('%s: listings', (_kind, server: MailServer) => {
  let user: DovecotUser;
  const gateways: TestGateway[] = [];

  async function gatewayWithAccount(env: Record<string, string> = {}): Promise<{ gw: TestGateway; url: string }> {
    const gw = await startGateway(env);
    gateways.push(gw);
    const account = await createImapAccount(gw.app, server as never, user);
    return { gw, url: `/v1/accounts/${account}/mailboxes/INBOX/messages` };
  }

  beforeAll(async () => {
    user = await createMailUser(server, 'listings');
    await seedMessages(server, user, Array.from({ length: 30 }, (_, i) => textMessage({ subject: `message ${i}` })));
    // Arrived late on 1 March in New York, which is 2 March in UTC; "feb" is 27 or 28 February in any zone.
    for (const [subject, at] of [['feb', '2024-02-27T12:00:00Z'], ['late-march-1', '2024-03-01T23:30:00-05:00'], ['march-3', '2024-03-03T08:00:00Z']] as const) {
      await seedMessages(server, user, [textMessage({ subject })], { internalDate: new Date(at) });
    }
  });

  afterAll(async () => {
    await Promise.all(gateways.map((gw) => gw.close()));
  });

  it('gives an unchanged mailbox the same state from every session and every gateway, and 304 for it', async () => {
    const first = await gatewayWithAccount();
    const second = await gatewayWithAccount();
    const a = await first.gw.app.inject({ url: `${first.url}?limit=10` });
    const b = await second.gw.app.inject({ url: `${second.url}?limit=10` });
    expect(a.statusCode, a.body).toBe(200);
    expect(b.headers.etag).toBe(a.headers.etag);
    expect((b.json() as Page).state).toBe((a.json() as Page).state);
    // Each gateway again on a session of its own (the first one's session now has INBOX selected).
    const again = await second.gw.app.inject({ url: `${second.url}?limit=10`, headers: { 'if-none-match': a.headers.etag as string } });
    expect(again.statusCode).toBe(304);
    const third = await gatewayWithAccount();
    const fresh = await third.gw.app.inject({ url: `${third.url}?limit=10`, headers: { 'if-none-match': a.headers.etag as string } });
    expect(fresh.statusCode).toBe(304);
  });

  it('serves an unchanged listing from the cache, also without CONDSTORE (checked by the page\'s flags alone)', async () => {
    const { gw, url } = await gatewayWithAccount();
    const hits = async (): Promise<number> =>
      Number(/mailgw_cache_requests_total\{kind="listing",result="hit"\} (\d+)/.exec((await gw.app.inject({ url: '/metrics' })).body)?.[1] ?? 0);
    const misses = async (): Promise<number> =>
      Number(/mailgw_cache_requests_total\{kind="listing",result="miss"\} (\d+)/.exec((await gw.app.inject({ url: '/metrics' })).body)?.[1] ?? 0);
    const first = await gw.app.inject({ url: `${url}?limit=7` });
    const before = await hits();
    const missedBefore = await misses();
    const second = await gw.app.inject({ url: `${url}?limit=7` });
    expect(await hits()).toBe(before + 1);
    // One request, one outcome: a hit is not counted as a miss too.
    expect(await misses()).toBe(missedBefore);
    expect(second.body).toBe(first.body);
    const next = (first.json() as { nextCursor: string }).nextCursor;
    const older = await gw.app.inject({ url: `${url}?limit=7&cursor=${next}` });
    const olderAgain = await gw.app.inject({ url: `${url}?limit=7&cursor=${next}` });
    expect(await hits()).toBe(before + 2);
    expect(olderAgain.body).toBe(older.body);
  });

  it('never answers 304 or a cached page after another client changed a flag, a message or the mailbox', async () => {
    const { gw, url } = await gatewayWithAccount();
    const before = await gw.app.inject({ url: `${url}?limit=5` });
    const page = before.json() as Page;
    const etag = before.headers.etag as string;
    expect((await gw.app.inject({ url: `${url}?limit=5`, headers: { 'if-none-match': etag } })).statusCode).toBe(304);

    const other = directImapClient(server, user);
    await other.connect();
    await other.mailboxOpen('INBOX');
    const newest = page.messages[0]!;
    await other.messageFlagsAdd(String(newest.uid), ['\\Flagged'], { uid: true });
    const flagged = await gw.app.inject({ url: `${url}?limit=5`, headers: { 'if-none-match': etag } });
    expect(flagged.statusCode).toBe(200);
    expect((flagged.json() as Page).messages[0]!.flags).toContain('\\Flagged');

    await other.messageFlagsRemove(String(newest.uid), ['\\Flagged'], { uid: true });
    await other.append('INBOX', textMessage({ subject: 'arrived meanwhile' }));
    const arrived = await gw.app.inject({ url: `${url}?limit=5`, headers: { 'if-none-match': etag } });
    expect(arrived.statusCode).toBe(200);
    expect((arrived.json() as Page).messages[0]!.subject).toBe('arrived meanwhile');
    await other.logout();
  });

  it('writes under If-Match only while the listed state is current', async () => {
    const { gw, url } = await gatewayWithAccount();
    const listed = await gw.app.inject({ url: `${url}?limit=5` });
    const page = listed.json() as Page;
    const etag = listed.headers.etag as string;
    const [first, second] = page.messages;
    const ok = await gw.app.inject({ method: 'PATCH', url: `${url}/${first!.id}`, headers: { 'if-match': etag }, payload: { addFlags: ['$Checked'] } });
    expect(ok.statusCode, ok.body).toBe(200);
    expect((ok.json() as { flags: string[] }).flags).toContain('$Checked');
    // That write changed the page, so the state it was checked against is gone.
    const stale = await gw.app.inject({ method: 'PATCH', url: `${url}/${second!.id}`, headers: { 'if-match': etag }, payload: { addFlags: ['$Checked'] } });
    expect(stale.statusCode, stale.body).toBe(412);
    expect(stale.json()).toMatchObject({ code: 'PRECONDITION_FAILED' });
    const after = (await gw.app.inject({ url: `${url}?limit=5` })).json() as Page;
    expect(after.messages[1]!.flags).not.toContain('$Checked');
  });

  it('answers If-None-Match on a filtered listing: 304 while it matches, 200 once a flag changed', async () => {
    const { gw, url } = await gatewayWithAccount();
    const filtered = `${url}?limit=5&subject=message`;
    const first = await gw.app.inject({ url: filtered });
    expect(first.statusCode, first.body).toBe(200);
    const etag = first.headers.etag as string;
    expect((await gw.app.inject({ url: filtered, headers: { 'if-none-match': etag } })).statusCode).toBe(304);
    const newest = (first.json() as Page).messages[0]!;
    const other = directImapClient(server, user);
    await other.connect();
    await other.mailboxOpen('INBOX');
    await other.messageFlagsAdd(String(newest.uid), ['$Filtered'], { uid: true });
    await other.logout();
    const changed = await gw.app.inject({ url: filtered, headers: { 'if-none-match': etag } });
    expect(changed.statusCode).toBe(200);
    expect((changed.json() as Page).messages[0]!.flags).toContain('$Filtered');
  });

  it('searches by subject, flag and size as the server does, the same on every server', async () => {
    const { gw, url } = await gatewayWithAccount();
    const subjects = async (query: string): Promise<string[]> => {
      const res = await gw.app.inject({ url: `${url}?limit=200&${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as Page).messages.map((m) => m.subject);
    };
    expect(await subjects('subject=message%2012')).toEqual(['message 12']);
    const other = directImapClient(server, user);
    await other.connect();
    await other.mailboxOpen('INBOX');
    const uids = (await other.search({ subject: 'message 2' }, { uid: true })) || [];
    await other.messageFlagsAdd(uids, ['\\Flagged'], { uid: true });
    await other.logout();
    // "message 2" and "message 20" … "message 29", newest first.
    const flagged = await subjects('flagged=true');
    expect(flagged).toEqual(['message 29', 'message 28', 'message 27', 'message 26', 'message 25', 'message 24', 'message 23', 'message 22', 'message 21', 'message 20', 'message 2']);
    expect((await subjects('flagged=false')).length).toBeGreaterThan(0);
    expect(await subjects('flagged=false')).not.toContain('message 2');
    expect(await subjects('larger=100000')).toEqual([]);
  });

  it('never lets imapflow turn a date filter into WITHIN seconds, though Dovecot and Cyrus offer WITHIN', async () => {
    const direct = directImapClient(server, user);
    await direct.connect();
    const offered = direct.capabilities.has('WITHIN');
    await direct.logout();
    expect(offered).toBe(traits[server.kind].within);
    const session = await connectImap(
      { id: 'x', protocol: 'imap', host: server.host, port: server.imapPort, security: 'none', username: user.username, credentials: { password: user.password }, tlsVerify: false },
      { egress: createEgressPolicy(['127.0.0.0/8']), timeoutMs: 5_000, socketTimeoutMs: 60_000, log: pino({ level: 'silent' }) },
    );
    try {
      expect(session.capabilities.has('WITHIN')).toBe(false);
    } finally {
      await session.logout();
    }
  });

  it('filters by calendar day and answers the same on every call', async () => {
    const { gw, url } = await gatewayWithAccount();
    const subjects = async (query: string): Promise<string[]> => {
      const res = await gw.app.inject({ url: `${url}?${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as Page).messages.map((m) => m.subject).sort();
    };
    // SINCE / BEFORE compare INTERNALDATE's day in the server's time zone; these dates are clear of it.
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await subjects('since=2024-02-29&before=2024-03-05'));
    expect(answers[0]).toEqual(['late-march-1', 'march-3']);
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    expect(await subjects('before=2024-03-01')).toEqual(['feb']);
  });

  it('answers delta sync exactly where the server has QRESYNC', async () => {
    const { gw, url } = await gatewayWithAccount();
    const page = (await gw.app.inject({ url: `${url}?limit=5` })).json() as Page;
    const changes = await gw.app.inject({ url: url.replace(/messages$/, `changes?since=${encodeURIComponent(page.state)}`) });
    if (!traits[server.kind].qresync) {
      expect(changes.statusCode, changes.body).toBeGreaterThanOrEqual(400);
      expect(changes.statusCode).toBeLessThan(500);
      return;
    }
    expect(changes.statusCode, changes.body).toBe(200);
    expect(changes.json()).toMatchObject({ created: [], destroyed: [] });
    const other = directImapClient(server, user);
    await other.connect();
    await other.append('INBOX', textMessage({ subject: 'delta' }));
    await other.mailboxOpen('INBOX');
    await other.messageFlagsAdd(String(page.messages[1]!.uid), ['\\Seen'], { uid: true });
    await other.messageDelete(String(page.messages[2]!.uid), { uid: true });
    await other.logout();
    const delta = (await gw.app.inject({ url: url.replace(/messages$/, `changes?since=${encodeURIComponent(page.state)}`) })).json() as {
      created: string[];
      updated: Array<{ id: string; flags: string[] }>;
      destroyed: string[];
    };
    expect(delta.created).toHaveLength(1);
    expect(delta.updated.map((m) => m.id)).toEqual([page.messages[1]!.id]);
    expect(delta.destroyed).toEqual([page.messages[2]!.id]);
  });
});
