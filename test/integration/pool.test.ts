/**
 * The IMAP session pool (ARCHITECTURE.md, "Pool") against the real Dovecot, watched from both sides:
 * the gateway's `services.imap.poolStats()` and what the server sees (`doveadm who` for live
 * connections, Dovecot's log for every login and logout). Each scenario has its own gateway (its own
 * pool settings) and its own Dovecot user, so the server-side counts are the scenario's alone.
 */
import { imapConnectionsOf } from '../support/imap-client.js';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll } from '../support/assertions.js';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { messageWithAttachment, textMessage } from '../support/messages.js';
import { startLatencyProxy } from '../support/latency-proxy.js';
import type { PoolStats } from '../../src/mail/imap/pool.js';

const { dovecot } = testServers();

// --- what the server sees ------------------------------------------------------------------------

/** Live IMAP connections of `user`, as Dovecot's anvil counts them. */
async function connectionsOf(user: DovecotUser): Promise<number> {
  return imapConnectionsOf(dovecot, user.username);
}

async function dovecotLog(): Promise<string[]> {
  return (await readFile(path.join(dovecot.dir, 'dovecot.log'), 'utf8')).split('\n');
}

/** How many times `user` logged in to IMAP (each pooled session is one login). */
async function loginsOf(user: DovecotUser): Promise<number> {
  return (await dovecotLog()).filter((l) => l.includes('imap-login: Info: Login: ') && l.includes(`user=<${user.username}>`)).length;
}

/** How many IMAP sessions of `user` ended with a LOGOUT (as opposed to a dropped connection). */
async function logoutsOf(user: DovecotUser): Promise<number> {
  return (await dovecotLog()).filter((l) => l.includes(`imap(${user.username})`) && l.includes('Disconnected: Logged out')).length;
}

// --- helpers -------------------------------------------------------------------------------------

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function stats(gw: TestGateway, account: string): PoolStats {
  return gw.app.services.imap.poolStats().get(account) ?? { open: 0, busy: 0, connecting: 0, waiting: 0, streams: 0 };
}

/**
 * A GET over real HTTP whose body the client does not read: once the socket buffers are full, the
 * gateway's stream waits (backpressure).
 */
function pausedGet(url: string): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => resolve({ req, res }));
    req.on('error', reject);
  });
}

/** Reads `res` slowly (a pause between reads) until it has at least `bytes`; answers what came. */
async function readAtLeast(res: IncomingMessage, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res) {
    chunks.push(chunk as Buffer);
    total += (chunk as Buffer).length;
    if (total >= bytes) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return Buffer.concat(chunks);
}

/** A message far larger than what loopback socket buffers hold, so a paused download cannot finish. */
function bigMessage(content: Buffer = randomBytes(20 * 1024 * 1024)): Buffer {
  return messageWithAttachment({ subject: 'Big', filename: 'big.bin', content });
}

interface Page {
  total: number;
  messages: Array<{ id: string; subject: string }>;
}

// --- scenarios -----------------------------------------------------------------------------------

describe('at most IMAP_MAX_SESSIONS_PER_ACCOUNT=2 sessions', () => {
  let gw: TestGateway;
  let base: string;
  let user: DovecotUser;
  let account: string;
  let big: Buffer;
  /** The attachment of `big`, decoded. */
  let bigContent: Buffer;
  const MESSAGES = 800;

  beforeAll(async () => {
    user = await dovecot.createUser('pool2');
    const msgs = (box: string) => Array.from({ length: MESSAGES }, (_, i) => textMessage({ subject: `${box} ${i + 1}` }));
    await dovecot.seedMaildir(user.username, msgs('INBOX'));
    await dovecot.seedMaildir(user.username, msgs('Other'), { mailbox: 'Other' });
    bigContent = randomBytes(20 * 1024 * 1024);
    big = bigMessage(bigContent);
    await dovecot.seedMaildir(user.username, [big], { mailbox: 'Big' });
    gw = await startGateway({ IMAP_MAX_SESSIONS_PER_ACCOUNT: '2', POOL_ACQUIRE_TIMEOUT_MS: '20000' });
    base = await gw.app.listen({ host: '127.0.0.1', port: 0 });
    account = await createImapAccount(gw.app, dovecot, user);
    // Creating the account verified the credentials with a login of its own, which logged out.
    await waitFor('the verify session to end', async () => (await connectionsOf(user)) === 0);
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
  });

  const list = (box: string, query = '?limit=200') =>
    gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${box}/messages${query}` });

  it('serves 10 concurrent listings with never more than 2 connections', async ({ annotate }) => {
    const loginsBefore = await loginsOf(user);
    let maxServer = 0;
    let maxPool = 0;
    let maxWaiting = 0;
    let running = true;
    const poolSampler = setInterval(() => {
      const s = stats(gw, account);
      maxPool = Math.max(maxPool, s.open + s.connecting);
      maxWaiting = Math.max(maxWaiting, s.waiting);
    }, 1);
    const serverSampler = (async () => {
      while (running) maxServer = Math.max(maxServer, await connectionsOf(user));
    })();

    const boxes = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? 'INBOX' : 'Other'));
    const results = await Promise.all(boxes.map((box) => list(box)));
    running = false;
    clearInterval(poolSampler);
    await serverSampler;
    maxServer = Math.max(maxServer, await connectionsOf(user));

    results.forEach((res, i) => {
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json() as Page;
      expect(page.total).toBe(MESSAGES);
      expect(page.messages).toHaveLength(200);
      expect(page.messages[0]!.subject).toBe(`${boxes[i]} ${MESSAGES}`);
    });
    await annotate(`10 listings: max ${maxPool} sessions in the pool, ${maxServer} seen by doveadm who, up to ${maxWaiting} waiting`);
    expect(maxPool).toBeLessThanOrEqual(2);
    expect(maxServer).toBeLessThanOrEqual(2);
    expect(maxWaiting).toBeGreaterThan(0); // they really did queue for the two sessions
    expect((await loginsOf(user)) - loginsBefore).toBe(2);
    expect(stats(gw, account)).toMatchObject({ open: 2, busy: 0, waiting: 0, connecting: 0 });
  });

  it('reuses idle sessions: more requests open no new connection', async () => {
    const loginsBefore = await loginsOf(user);
    const openBefore = stats(gw, account).open;
    for (const box of ['INBOX', 'Other', 'INBOX']) expect((await list(box, '?limit=5')).statusCode).toBe(200);
    expect((await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes?counts=true` })).statusCode).toBe(200);
    expect(stats(gw, account).open).toBe(openBefore);
    expect(await loginsOf(user)).toBe(loginsBefore);
    expect(await connectionsOf(user)).toBe(openBefore);
  });

  it('holds no session for a raw download the client does not read, serves listings meanwhile, and completes it when the client reads on', async () => {
    const page = (await list('Big')).json() as Page;
    const url = `${base}/v1/accounts/${account}/mailboxes/Big/messages/${page.messages[0]!.id}/raw`;
    const { req, res } = await pausedGet(url);
    try {
      expect(res.statusCode).toBe(200);
      expect(Number(res.headers['content-length'])).toBe(big.length);
      // A chunk is fetched, then the session goes back: the paused client holds nothing.
      await waitFor('the first chunk to be fetched', () => stats(gw, account).busy === 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(stats(gw, account)).toMatchObject({ streams: 0, busy: 0 });

      const started = Date.now();
      for (const box of ['INBOX', 'Other', 'Big']) {
        const res2 = await list(box, '?limit=10');
        expect(res2.statusCode, res2.body).toBe(200);
      }
      expect((await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes` })).statusCode).toBe(200);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await connectionsOf(user)).toBeLessThanOrEqual(2);

      // The client reads on: the download completes byte-exact and holds no session after.
      const body = await readAll(res);
      expect(body.equals(big)).toBe(true);
      await waitFor('no session busy', () => stats(gw, account).busy === 0);
      expect(stats(gw, account)).toMatchObject({ open: 2, streams: 0 });
    } finally {
      req.destroy();
    }
  });

  it('serves more paused raw downloads of one account than it has sessions, all at once, and listings meanwhile', async () => {
    const page = (await list('Big')).json() as Page;
    const url = `${base}/v1/accounts/${account}/mailboxes/Big/messages/${page.messages[0]!.id}/raw`;
    const readers = await Promise.all(Array.from({ length: 5 }, () => pausedGet(url)));
    try {
      for (const { res } of readers) expect(res.statusCode).toBe(200);
      await waitFor('every first chunk to be fetched', () => stats(gw, account).busy === 0);
      expect(stats(gw, account)).toMatchObject({ streams: 0, waiting: 0 });
      const res = await list('INBOX', '?limit=10');
      expect(res.statusCode, res.body).toBe(200);
      expect(await connectionsOf(user)).toBeLessThanOrEqual(2);

      const bodies = await Promise.all(readers.map(({ res: r }) => readAll(r)));
      for (const body of bodies) expect(body.equals(big)).toBe(true);
      await waitFor('no session busy', () => stats(gw, account).busy === 0);
      expect(stats(gw, account)).toMatchObject({ open: 2, streams: 0, waiting: 0 });
    } finally {
      for (const { req } of readers) req.destroy();
    }
  });

  it('serves 50 slow readers of one message on 2 sessions: every one gets its bytes, and a listing meanwhile at once', { timeout: 60_000 }, async () => {
    const page = (await list('Big')).json() as Page;
    const url = `${base}/v1/accounts/${account}/mailboxes/Big/messages/${page.messages[0]!.id}/raw`;
    const readers = await Promise.all(Array.from({ length: 50 }, () => pausedGet(url)));
    try {
      for (const { res } of readers) expect(res.statusCode).toBe(200);
      await waitFor('every first chunk to be fetched', () => stats(gw, account).busy === 0, 20_000);
      expect(stats(gw, account)).toMatchObject({ streams: 0, waiting: 0 });
      const started = Date.now();
      const res = await list('INBOX', '?limit=10');
      expect(res.statusCode, res.body).toBe(200);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(await connectionsOf(user)).toBeLessThanOrEqual(2);

      // Each reader, read a little at a time, gets well past its first chunk (the download goes on
      // chunk after chunk for all of them at once), and what it got is the message's start.
      const prefixes = await Promise.all(readers.map(({ res: r }) => readAtLeast(r, 3 * 1024 * 1024)));
      for (const prefix of prefixes) expect(prefix.equals(big.subarray(0, prefix.length))).toBe(true);
    } finally {
      for (const { req } of readers) req.destroy();
    }
    await waitFor('no session busy', () => stats(gw, account).busy === 0, 10_000);
  });

  it('serves more paused attachment downloads of one account than it has sessions, and a listing meanwhile at once', async () => {
    const page = (await list('Big')).json() as Page;
    const id = page.messages[0]!.id;
    const detail = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/Big/messages/${id}` })).json() as { attachments: Array<{ id: string }> };
    const url = `${base}/v1/accounts/${account}/mailboxes/Big/messages/${id}/attachments/${detail.attachments[0]!.id}`;
    // Twice the account's sessions: while a download held its session, the third would wait and a listing get none.
    const readers = await Promise.all(Array.from({ length: 4 }, () => pausedGet(url)));
    try {
      for (const { res } of readers) expect(res.statusCode).toBe(200);
      await waitFor('every first chunk to be fetched', () => stats(gw, account).busy === 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(stats(gw, account)).toMatchObject({ streams: 0, busy: 0, waiting: 0 });
      const started = Date.now();
      const res = await list('INBOX', '?limit=10');
      expect(res.statusCode, res.body).toBe(200);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(await connectionsOf(user)).toBeLessThanOrEqual(2);

      const bodies = await Promise.all(readers.map(({ res: r }) => readAll(r)));
      for (const body of bodies) expect(body.equals(bigContent)).toBe(true);
      await waitFor('no session busy', () => stats(gw, account).busy === 0);
      expect(stats(gw, account)).toMatchObject({ open: 2, streams: 0, waiting: 0 });
    } finally {
      for (const { req } of readers) req.destroy();
    }
  });
});

describe('POOL_EXHAUSTED with one session and POOL_ACQUIRE_TIMEOUT_MS=300', () => {
  let gw: TestGateway;
  let base: string;
  let user: DovecotUser;
  let account: string;
  let bigId: string;

  beforeAll(async () => {
    user = await dovecot.createUser('pool1');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'small' })]);
    await dovecot.seedMaildir(user.username, [bigMessage()], { mailbox: 'Big' });
    gw = await startGateway({ IMAP_MAX_SESSIONS_PER_ACCOUNT: '1', POOL_ACQUIRE_TIMEOUT_MS: '300' });
    base = await gw.app.listen({ host: '127.0.0.1', port: 0 });
    account = await createImapAccount(gw.app, dovecot, user);
    const page = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/Big/messages` })).json() as Page;
    bigId = page.messages[0]!.id;
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
  });

  const list = () => gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });

  async function expectExhausted(request: typeof list): Promise<void> {
    const started = Date.now();
    const res = await request();
    const waitedMs = Date.now() - started;
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'POOL_EXHAUSTED', status: 503 });
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(waitedMs).toBeGreaterThanOrEqual(250);
    expect(waitedMs).toBeLessThan(3000);
  }

  it('answers 503 POOL_EXHAUSTED with Retry-After while a command holds the only session, and serves again once it is done', async () => {
    // The server's answers held back: a listing keeps the only session busy for 2 s.
    const proxy = await startLatencyProxy({ host: dovecot.host, port: dovecot.imapPort });
    const slow = await createImapAccount(gw.app, dovecot, user, { host: proxy.host, port: proxy.port });
    const listSlow = () => gw.app.inject({ url: `/v1/accounts/${slow}/mailboxes/INBOX/messages` });
    try {
      expect((await listSlow()).statusCode).toBe(200);
      proxy.delayMs = 2000;
      const holding = listSlow();
      await waitFor('the listing to hold the session', () => stats(gw, slow).busy === 1);
      // Another request that needs a session (a second listing of INBOX would share the first's state check).
      await expectExhausted(() => gw.app.inject({ url: `/v1/accounts/${slow}/mailboxes` }));
      expect(stats(gw, slow)).toMatchObject({ open: 1, waiting: 0 }); // the waiter left on time
      proxy.delayMs = 0;
      expect((await holding).statusCode).toBe(200);
      expect((await listSlow()).statusCode).toBe(200);
    } finally {
      proxy.delayMs = 0;
      await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${slow}` });
      await proxy.close();
    }
  });

  it('serves listings on the only session while an attachment download is paused, and completes it when the client reads on', async () => {
    const detail = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/Big/messages/${bigId}` })).json() as { attachments: Array<{ id: string; size: number }> };
    const { req, res } = await pausedGet(`${base}/v1/accounts/${account}/mailboxes/Big/messages/${bigId}/attachments/${detail.attachments[0]!.id}`);
    try {
      expect(res.statusCode).toBe(200);
      await waitFor('the first chunk to be fetched', () => stats(gw, account).busy === 0);
      expect(stats(gw, account)).toMatchObject({ streams: 0, open: 1 });
      const during = await list();
      expect(during.statusCode, during.body).toBe(200);
      const body = await readAll(res);
      expect(body.length).toBe(detail.attachments[0]!.size);
    } finally {
      req.destroy();
    }
    await waitFor('the session to come back', () => stats(gw, account).busy === 0);
    expect((await list()).statusCode).toBe(200);
  });

  it('serves listings on the only session while a raw download is paused, and keeps it usable when the client aborts midway', async () => {
    const loginsBefore = await loginsOf(user);
    const { req, res } = await pausedGet(`${base}/v1/accounts/${account}/mailboxes/Big/messages/${bigId}/raw`);
    expect(res.statusCode).toBe(200);
    await waitFor('the first chunk to be fetched', () => stats(gw, account).busy === 0);
    const during = await list();
    expect(during.statusCode, during.body).toBe(200);
    req.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const after = await list();
    expect(after.statusCode, after.body).toBe(200);
    // The session was never dropped.
    expect(await loginsOf(user)).toBe(loginsBefore);
  });

  it.each(['raw', 'attachment'] as const)('ends a %s download whose client reads nothing for DOWNLOAD_IDLE_TIMEOUT_MS', async (kind) => {
    const idle = await startGateway({ DOWNLOAD_IDLE_TIMEOUT_MS: '400' });
    try {
      const idleBase = await idle.app.listen({ host: '127.0.0.1', port: 0 });
      const idleAccount = await createImapAccount(idle.app, dovecot, user);
      const messageUrl = `/v1/accounts/${idleAccount}/mailboxes/Big/messages/${bigId}`;
      const detail = (await idle.app.inject({ url: messageUrl })).json() as { size: number; attachments: Array<{ id: string; size: number }> };
      const [path, fullBytes] = kind === 'raw' ? ['/raw', detail.size] : [`/attachments/${detail.attachments[0]!.id}`, detail.attachments[0]!.size];
      const { req, res } = await pausedGet(`${idleBase}${messageUrl}${path}`);
      try {
        expect(res.statusCode).toBe(200);
        // Paused past the bound: the gateway ends the download. What was already in the socket buffers
        // still arrives when the client reads on, then the response stops short.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        let received = 0;
        const ended = await new Promise<string>((resolve) => {
          res.on('data', (chunk: Buffer) => (received += chunk.length));
          res.on('end', () => resolve('end'));
          res.on('aborted', () => resolve('aborted'));
          res.on('error', () => resolve('aborted'));
        });
        expect(ended).toBe('aborted');
        expect(received).toBeLessThan(fullBytes);
      } finally {
        req.destroy();
      }
      expect(idle.app.services.imap.poolStats().get(idleAccount)).toMatchObject({ busy: 0, streams: 0 });
    } finally {
      await idle.close();
    }
  });

  it('keeps the session when the client aborts an attachment download midway', async () => {
    const loginsBefore = await loginsOf(user);
    const detail = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/Big/messages/${bigId}` });
    expect(detail.statusCode, detail.body).toBe(200);
    const attachment = (detail.json() as { attachments: Array<{ id: string }> }).attachments[0]!;
    const { req, res } = await pausedGet(
      `${base}/v1/accounts/${account}/mailboxes/Big/messages/${bigId}/attachments/${attachment.id}`,
    );
    expect(res.statusCode).toBe(200);
    await waitFor('the first chunk to be fetched', () => stats(gw, account).busy === 0);
    req.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await waitFor('no session busy', () => stats(gw, account).busy === 0);
    const after = await list();
    expect(after.statusCode, after.body).toBe(200);
    expect(after.json().total).toBe(1);
    expect(await loginsOf(user)).toBe(loginsBefore);
  });
});

describe('one session shared by every request (IMAP_MAX_SESSIONS_PER_ACCOUNT=1)', () => {
  let gw: TestGateway;
  let user: DovecotUser;
  let account: string;

  beforeAll(async () => {
    user = await dovecot.createUser('poolone');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'kept' })]);
    gw = await startGateway({ IMAP_MAX_SESSIONS_PER_ACCOUNT: '1' });
    account = await createImapAccount(gw.app, dovecot, user);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('is not left claiming its old mailbox after a SELECT that failed (RFC 9051 §6.3.2: the old one is closed)', async () => {
    const get = (url: string) => gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${url}` });
    const first = await get('INBOX/messages');
    expect(first.statusCode).toBe(200);
    const id = (first.json() as Page).messages[0]!.id;
    const loginsBefore = await loginsOf(user);

    expect((await get('Nope/messages')).json().code).toBe('MAILBOX_NOT_FOUND');
    // Same session (no new login), and INBOX works again: listing, message, raw.
    expect((await get('INBOX/messages')).statusCode).toBe(200);
    expect((await get('Nope/messages')).statusCode).toBe(404);
    expect((await get(`INBOX/messages/${id}`)).statusCode).toBe(200);
    expect((await get('Nope/messages')).statusCode).toBe(404);
    const raw = await get(`INBOX/messages/${id}/raw`);
    expect(raw.statusCode).toBe(200);
    expect(raw.body).toContain('Subject: kept');
    expect(await loginsOf(user)).toBe(loginsBefore);
  });
});

describe('idle sessions close after IMAP_SESSION_IDLE_TIMEOUT_MS', () => {
  let gw: TestGateway;
  let user: DovecotUser;
  let account: string;

  beforeAll(async () => {
    user = await dovecot.createUser('poolidle');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'one' })]);
    gw = await startGateway({ IMAP_SESSION_IDLE_TIMEOUT_MS: '1000' });
    account = await createImapAccount(gw.app, dovecot, user);
    await waitFor('the verify session to end', async () => (await connectionsOf(user)) === 0);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('logs an idle session out after the TTL, and opens a new one when needed', async () => {
    const logoutsBefore = await logoutsOf(user);
    const loginsBefore = await loginsOf(user);
    const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
    expect(res.statusCode).toBe(200);
    const releasedAt = Date.now();
    expect(stats(gw, account).open).toBe(1);
    expect(await connectionsOf(user)).toBe(1);

    await waitFor('the pool to close the idle session', () => stats(gw, account).open === 0, 5000);
    const closedAfterMs = Date.now() - releasedAt;
    expect(closedAfterMs).toBeGreaterThanOrEqual(900);
    await waitFor('the server to see no connection', async () => (await connectionsOf(user)) === 0, 3000);
    // Closed with LOGOUT, not dropped.
    await waitFor('the LOGOUT in the server log', async () => (await logoutsOf(user)) === logoutsBefore + 1, 3000);

    const again = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
    expect(again.statusCode).toBe(200);
    expect(await loginsOf(user)).toBe(loginsBefore + 2);
  });

  it('measures the TTL from the last use: a session used every 400 ms stays open', async () => {
    // The previous test ended with a listing, so one session is open and fresh.
    expect(stats(gw, account).open).toBe(1);
    const loginsBefore = await loginsOf(user);
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect((await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` })).statusCode).toBe(200);
    }
    // 1.6 s in all, longer than the TTL, yet no new login.
    expect(await loginsOf(user)).toBe(loginsBefore);
    expect(stats(gw, account).open).toBe(1);
  });
});

describe('affinity: a request goes to an idle session that has its mailbox selected', () => {
  let gw: TestGateway;
  let user: DovecotUser;
  let account: string;

  beforeAll(async () => {
    user = await dovecot.createUser('poolsel');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'in inbox' })]);
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'in other' })], { mailbox: 'Other' });
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'in third' })], { mailbox: 'Third' });
    // Logs at trace: imapflow's debug lines carry every command a session sends, with its connection id.
    gw = await startGateway({ IMAP_MAX_SESSIONS_PER_ACCOUNT: '2' }, { captureLogs: true });
    account = await createImapAccount(gw.app, dovecot, user);
  });

  afterAll(async () => {
    await gw?.close();
  });

  /** The SELECT/EXAMINE commands the gateway's sessions sent so far: [connection id, mailbox]. */
  function selects(): Array<[string, string]> {
    const found: Array<[string, string]> = [];
    for (const line of gw.logs) {
      if (!line.includes('"src":"c"')) continue;
      const entry = JSON.parse(line) as { msg: string; cid: string };
      const match = /^\S+ (?:SELECT|EXAMINE) "?([^"\s]+)"?/.exec(entry.msg);
      if (match) found.push([entry.cid, match[1]!]);
    }
    return found;
  }

  const get = (url: string) => gw.app.inject({ url: `/v1/accounts/${account}${url}` });

  it('sends no SELECT when an idle session has the mailbox selected already', async () => {
    // Two mailboxes at once: two sessions, each selects its own.
    const [a, b] = await Promise.all([get('/mailboxes/INBOX/messages'), get('/mailboxes/Other/messages')]);
    expect(a.statusCode).toBe(200);
    expect(b.statusCode).toBe(200);
    const initial = selects();
    expect(initial.map(([, box]) => box).sort()).toEqual(['INBOX', 'Other']);
    expect(new Set(initial.map(([cid]) => cid)).size).toBe(2);
    const sessionOf = new Map(initial.map(([cid, box]) => [box, cid]));
    expect(sessionOf.size).toBe(2);

    // Alternate between the two, with every kind of request: none needs a SELECT.
    const inboxId = (a.json() as Page).messages[0]!.id;
    const otherId = (b.json() as Page).messages[0]!.id;
    for (let round = 0; round < 3; round++) {
      expect((await get('/mailboxes/INBOX/messages')).statusCode).toBe(200);
      expect((await get('/mailboxes/Other/messages')).statusCode).toBe(200);
      expect((await get(`/mailboxes/Other/messages/${otherId}/raw`)).statusCode).toBe(200);
      expect((await get(`/mailboxes/INBOX/messages/${inboxId}?markSeen=${round === 0}`)).statusCode).toBe(200);
      expect((await get('/mailboxes?counts=true')).statusCode).toBe(200);
    }
    expect(selects()).toEqual(initial);
    expect(stats(gw, account).open).toBe(2);

    // A third mailbox takes over one session (one SELECT) and leaves the other mailbox's alone.
    expect((await get('/mailboxes/Third/messages')).statusCode).toBe(200);
    const afterThird = selects();
    expect(afterThird).toHaveLength(3);
    const [thirdCid, thirdBox] = afterThird[2]!;
    expect(thirdBox).toBe('Third');
    const untouched = [...sessionOf].find(([, cid]) => cid !== thirdCid)!;
    expect((await get(`/mailboxes/${untouched[0]}/messages`)).statusCode).toBe(200);
    expect((await get('/mailboxes/Third/messages')).statusCode).toBe(200);
    expect(selects()).toHaveLength(3);
  });
});

describe('a session the server drops', () => {
  let gw: TestGateway;
  let user: DovecotUser;
  let account: string;

  beforeAll(async () => {
    user = await dovecot.createUser('poolkick');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'one' })]);
    gw = await startGateway();
    account = await createImapAccount(gw.app, dovecot, user);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('is evicted and never handed out again; the next request gets a fresh session', async () => {
    const list = () => gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
    expect((await list()).statusCode).toBe(200);
    expect(stats(gw, account).open).toBe(1);
    const loginsBefore = await loginsOf(user);

    await dovecot.doveadm(['kick', user.username]);
    await waitFor('the pool to notice the dropped session', () => stats(gw, account).open === 0);

    const res = await list();
    expect(res.statusCode, res.body).toBe(200);
    expect(await loginsOf(user)).toBe(loginsBefore + 1);
    expect(stats(gw, account)).toMatchObject({ open: 1, busy: 0 });
  });
});

describe('requests in flight while the account’s connection settings change', () => {
  it('are all answered: the running ones on their old session, the waiting ones on a session with the new settings', async () => {
    const user = await dovecot.createUser('poolpatch');
    await dovecot.seedMaildir(user.username, Array.from({ length: 30 }, (_, i) => textMessage({ subject: `Patch ${i}` })));
    const gw = await startGateway({ IMAP_MAX_SESSIONS_PER_ACCOUNT: '1', CACHE_LISTINGS: 'false' });
    try {
      const account = await createImapAccount(gw.app, dovecot, user);
      const listings = Array.from({ length: 8 }, () => gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages?limit=30` }));
      await waitFor('listings to queue for the one session', () => stats(gw, account).waiting > 0);
      // A connection field (the password, to the same value) changes: the pool is closed under them.
      const patch = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${account}?verify=false`, payload: { password: user.password } });
      expect(patch.statusCode, patch.body).toBe(200);
      for (const res of await Promise.all(listings)) {
        expect(res.statusCode, res.body).toBe(200);
        expect((res.json() as Page).total).toBe(30);
      }
    } finally {
      await gw.close();
    }
  });
});
