import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServers, type DovecotUser } from '../support/servers.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';
import { startLatencyProxy } from '../support/latency-proxy.js';
import { directImapClient } from '../support/imap-client.js';

const { dovecot } = testServers();

interface Page {
  messages: Array<{ id: string; uid: number; subject: string; flags: string[] }>;
  state: string;
  total: number;
}

function listingHits(metricsText: string): number {
  const match = /mailgw_cache_requests_total\{kind="listing",result="hit"\} (\d+)/.exec(metricsText);
  return match ? Number(match[1]) : 0;
}

async function hits(gw: TestGateway): Promise<number> {
  return listingHits((await gw.app.inject({ url: '/metrics' })).body);
}

describe('listing cache, validated against the mailbox state', () => {
  let gw: TestGateway;
  let user: DovecotUser;
  let account: string;

  beforeAll(async () => {
    user = await dovecot.createUser('lcache');
    await dovecot.seedMaildir(user.username, Array.from({ length: 20 }, (_, i) => textMessage({ subject: `L${i + 1}` })));
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Other box' })], { mailbox: 'Other' });
    // One session: every request shares it, so the STATUS path can be seen.
    gw = await startGateway({ IMAP_MAX_SESSIONS_PER_ACCOUNT: '1' });
    account = await createImapAccount(gw.app, dovecot, user);
  });
  afterAll(async () => gw?.close());

  const list = async (mailbox = 'INBOX') => {
    const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${mailbox}/messages?limit=10` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as Page;
  };

  it('serves an unchanged listing from the cache, and a changed one fresh on the very next call', async () => {
    const first = await list();
    const before = await hits(gw);
    const second = await list();
    expect(second).toEqual(first);
    expect(await hits(gw)).toBe(before + 1);

    // A flag set by another client (CONDSTORE moves HIGHESTMODSEQ): visible at once.
    const top = first.messages[0]!;
    await dovecot.doveadm(['flags', 'add', '-u', user.username, '\\Flagged', 'mailbox', 'INBOX', 'uid', String(top.uid)]);
    const third = await list();
    expect(third.messages[0]!.flags).toContain('\\Flagged');
    expect(third.state).not.toBe(first.state);

    // New mail from another client: visible at once.
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Fresh arrival' })]);
    const fourth = await list();
    expect(fourth.messages[0]!.subject).toBe('Fresh arrival');
    expect(fourth.total).toBe(first.total + 1);
  });

  it('checks a cached page with STATUS when no session has the mailbox selected (no SELECT)', async () => {
    const inbox = await list('INBOX');
    await list('Other'); // the only session now has Other selected
    const before = await hits(gw);
    const again = await list('INBOX');
    expect(again).toEqual(inbox);
    expect(await hits(gw)).toBe(before + 1);
    const [stats] = [...gw.app.services.imap.poolStats().values()];
    expect(stats?.open).toBe(1);

    // Changed meanwhile: STATUS shows another state, the page is rebuilt.
    await list('Other');
    await dovecot.doveadm(['flags', 'add', '-u', user.username, '\\Seen', 'mailbox', 'INBOX', 'uid', String(inbox.messages[1]!.uid)]);
    const changed = await list('INBOX');
    expect(changed.messages[1]!.flags).toContain('\\Seen');
  });

  it('a listing that arrives while an earlier check is on its way waits for a check of its own', async () => {
    // Listings of one mailbox share a state check that is not yet sent. One that arrives after a
    // check went out must not take that check's answer: the change it must show may have happened
    // in between. The server's answers are held back so that the first check is still on its way
    // when another client changes a flag and the second listing arrives.
    const proxy = await startLatencyProxy({ host: dovecot.host, port: dovecot.imapPort });
    const slowAccount = await createImapAccount(gw.app, dovecot, user, { host: proxy.host, port: proxy.port });
    const other = directImapClient(dovecot, user);
    const url = `/v1/accounts/${slowAccount}/mailboxes/INBOX/messages?limit=10`;
    const listSlow = async () => {
      const res = await gw.app.inject({ url });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as Page;
    };
    try {
      await other.connect();
      await other.mailboxOpen('INBOX');
      const top = (await listSlow()).messages[0]!;
      expect(top.flags).not.toContain('\\Draft');
      proxy.delayMs = 300;
      const checkSent = proxy.clientSends(/ (NOOP|STATUS)\b/);
      const first = listSlow(); // its check goes out now; the answer comes 300 ms later
      await checkSent;
      await other.messageFlagsAdd(String(top.uid), ['\\Draft'], { uid: true });
      const second = await listSlow();
      expect(second.messages[0]!.flags).toContain('\\Draft');
      await first;
    } finally {
      proxy.delayMs = 0;
      await other.logout().catch(() => undefined);
      await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${slowAccount}` });
      await proxy.close();
    }
  });

  it('a changed mailbox costs one NOOP: the listing reuses its own state check on the same session', async () => {
    const proxy = await startLatencyProxy({ host: dovecot.host, port: dovecot.imapPort });
    const counted = await createImapAccount(gw.app, dovecot, user, { host: proxy.host, port: proxy.port });
    const url = `/v1/accounts/${counted}/mailboxes/INBOX/messages?limit=10`;
    const noops = (): number => proxy.clientText().match(/ NOOP\r\n/g)?.length ?? 0;
    try {
      const top = ((await gw.app.inject({ url })).json() as Page).messages[0]!;
      await dovecot.doveadm(['flags', 'add', '-u', user.username, '\\Answered', 'mailbox', 'INBOX', 'uid', String(top.uid)]);
      const before = noops();
      const changed = (await gw.app.inject({ url })).json() as Page;
      expect(changed.messages[0]!.flags).toContain('\\Answered');
      expect(noops() - before).toBe(1);
    } finally {
      await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${counted}` });
      await proxy.close();
    }
  });

  it('answers 304 from the cached state', async () => {
    const page = await list();
    const res = await gw.app.inject({
      url: `/v1/accounts/${account}/mailboxes/INBOX/messages?limit=10`,
      headers: { 'if-none-match': `"${page.state}"` },
    });
    expect(res.statusCode).toBe(304);
  });
});

describe('listing cache shared by two gateways on one Redis', () => {
  let redis: RedisServer;
  let a: TestGateway;
  let b: TestGateway;
  let env: Record<string, string>;

  beforeAll(async () => {
    redis = await startRedis();
    env = { REDIS_URL: redis.url, SECRET_KEY: randomBytes(32).toString('hex') };
    a = await startGateway(env);
    b = await startGateway(env);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('an account made through one is used through the other, and neither serves a stale page', async () => {
    const user = await dovecot.createUser('shared');
    await dovecot.seedMaildir(user.username, Array.from({ length: 5 }, (_, i) => textMessage({ subject: `S${i}` })));
    const account = await createImapAccount(a.app, dovecot, user);
    const url = `/v1/accounts/${account}/mailboxes/INBOX/messages`;

    const fromA = (await a.app.inject({ url })).json() as Page;
    const beforeB = await hits(b);
    const fromB = (await b.app.inject({ url })).json() as Page;
    expect(fromB).toEqual(fromA);
    expect(await hits(b)).toBe(beforeB + 1); // B served A's page from the shared cache, after checking it

    const flagged = await a.app.inject({
      method: 'PATCH',
      url: `${url}/${fromA.messages[0]!.id}`,
      payload: { flagged: true },
    });
    expect(flagged.statusCode).toBe(200);
    const afterWrite = (await b.app.inject({ url })).json() as Page;
    expect(afterWrite.messages[0]!.flags).toContain('\\Flagged');
    expect(afterWrite.state).not.toBe(fromA.state);
  });

  it('sends the same bytes from the server, from Redis, from process memory, and without the cache', async () => {
    const user = await dovecot.createUser('samebytes');
    await dovecot.seedMaildir(user.username, [
      // RFC 2047 encoded words: non-ASCII in the JSON, so a stray re-encoding would show.
      textMessage({ subject: '=?UTF-8?Q?Gr=C3=BC=C3=9Fe=2C_na=C3=AFve_caf=C3=A9_=E2=98=95?=', from: '=?UTF-8?Q?Zo=C3=AB_=C3=91?= <zoe@example.com>' }),
      textMessage({ subject: 'Plain' }),
    ]);
    const account = await createImapAccount(a.app, dovecot, user);
    const url = `/v1/accounts/${account}/mailboxes/INBOX/messages`;
    const uncachedGateway = await startGateway({ ...env, CACHE_LISTINGS: 'false' });
    try {
      const miss = await a.app.inject({ url }); // built from the server, stored
      const fromRedis = await b.app.inject({ url }); // B has no copy of its own yet
      const fromMemory = await b.app.inject({ url }); // now B's own copy
      const uncached = await uncachedGateway.app.inject({ url });
      expect(await hits(b)).toBeGreaterThanOrEqual(2);
      for (const res of [miss, fromRedis, fromMemory, uncached]) {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
        expect(res.headers.etag).toBe(miss.headers.etag);
      }
      expect(fromRedis.rawPayload.equals(miss.rawPayload)).toBe(true);
      expect(fromMemory.rawPayload.equals(miss.rawPayload)).toBe(true);
      expect(uncached.rawPayload.equals(miss.rawPayload)).toBe(true);
      expect((miss.json() as Page).messages.map((m) => m.subject)).toEqual(['Plain', 'Grüße, naïve café ☕']);
    } finally {
      await uncachedGateway.close();
    }
  });
});
