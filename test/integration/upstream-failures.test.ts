/**
 * What a caller sees when the mail server misbehaves: a problem+json with the right code, within a
 * bounded time, and a gateway that still answers the next request. Refused connections and kicked
 * sessions come from the real Dovecot; silent and hanging-up peers are fakes (a real server cannot be
 * made to go silent on demand).
 */
import { execFileSync } from 'node:child_process';
import type { ImapFlow } from 'imapflow';
import { directImapClient } from '../support/imap-client.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, imapAccountBody, startGateway, type TestGateway } from '../support/gateway.js';
import { sbinEnv } from '../support/dovecot.js';
import { closedPort, startFakeServer, type FakeServer } from '../support/fake-servers.js';

const { dovecot } = testServers();

const UPSTREAM_TIMEOUT_MS = 1500;
/** A behaviour bound, not a performance target: a timeout must answer well before a client gives up. */
const ANSWER_BOUND_MS = 3 * UPSTREAM_TIMEOUT_MS;

let gw: TestGateway;
const fakes: FakeServer[] = [];

beforeAll(async () => {
  gw = await startGateway({
    UPSTREAM_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS),
    // One session per account: a connection slot leaked by a failed attempt would make the next
    // request wait for POOL_EXHAUSTED instead of trying again.
    IMAP_MAX_SESSIONS_PER_ACCOUNT: '1',
    POOL_ACQUIRE_TIMEOUT_MS: '20000',
  });
});

afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

afterAll(async () => {
  await gw?.close();
});

async function fake(behaviour: Parameters<typeof startFakeServer>[0]): Promise<FakeServer> {
  const server = await startFakeServer(behaviour);
  fakes.push(server);
  return server;
}

async function timed(run: () => Promise<LightMyRequestResponse>): Promise<{ res: LightMyRequestResponse; elapsedMs: number }> {
  const started = performance.now();
  const res = await run();
  return { res, elapsedMs: performance.now() - started };
}

function expectProblem(res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body.code).toBe(code);
  expect(body.status).toBe(status);
  expect(typeof body.detail).toBe('string');
  expect(body.requestId).toBe(res.headers['x-request-id']);
  return body;
}

function createOn(port: number, query = '', extra: Record<string, unknown> = {}) {
  const user: DovecotUser = { username: 'nobody-here', password: 'irrelevant-pw' };
  return gw.app.inject({
    method: 'POST',
    url: `/v1/accounts${query}`,
    payload: imapAccountBody(dovecot, user, { port, ...extra }),
  });
}

async function expectNotSaved(): Promise<void> {
  const list = await gw.app.inject({ url: '/v1/accounts' });
  expect(list.statusCode).toBe(200);
  const ids = (list.json() as { accounts: Array<{ id: string; port: number }> }).accounts;
  expect(ids.filter((a) => fakes.some((f) => f.port === a.port))).toEqual([]);
}

/** Polls until `check` holds (the gateway tears sockets down asynchronously after answering). */
async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('creating an account against a failing server (verify=true)', () => {
  it('a port with nothing listening is 502 UPSTREAM_ERROR at once', async () => {
    const port = await closedPort();
    const { res, elapsedMs } = await timed(() => createOn(port, '', { id: 'refused' }));
    expectProblem(res, 502, 'UPSTREAM_ERROR');
    expect(elapsedMs).toBeLessThan(UPSTREAM_TIMEOUT_MS);
    expect((await gw.app.inject({ url: '/v1/accounts/refused' })).statusCode).toBe(404);
  });

  it('a server that accepts and never greets is 504 UPSTREAM_TIMEOUT within the bound, and its socket is closed', async () => {
    const server = await fake('silent');
    const { res, elapsedMs } = await timed(() => createOn(server.port));
    expectProblem(res, 504, 'UPSTREAM_TIMEOUT');
    expect(elapsedMs).toBeGreaterThanOrEqual(UPSTREAM_TIMEOUT_MS * 0.9);
    expect(elapsedMs).toBeLessThan(ANSWER_BOUND_MS);
    expect(server.accepted).toBe(1);
    await eventually(() => server.open === 0);
    await expectNotSaved();
  });

  it('a server that greets and then stays silent on login is 504 UPSTREAM_TIMEOUT within the bound', async () => {
    const server = await fake('greet-then-silent');
    const { res, elapsedMs } = await timed(() => createOn(server.port));
    expectProblem(res, 504, 'UPSTREAM_TIMEOUT');
    expect(elapsedMs).toBeLessThan(ANSWER_BOUND_MS);
    expect(server.received).not.toBe(''); // it got as far as sending a command
    await eventually(() => server.open === 0);
    await expectNotSaved();
  });

  it('a server that closes the connection right after accepting is 502 UPSTREAM_ERROR, not a timeout', async () => {
    const server = await fake('close');
    const { res, elapsedMs } = await timed(() => createOn(server.port));
    expectProblem(res, 502, 'UPSTREAM_ERROR');
    expect(elapsedMs).toBeLessThan(UPSTREAM_TIMEOUT_MS);
    expect(server.accepted).toBeGreaterThanOrEqual(1);
    await expectNotSaved();
  });

  it('the 5xx details never quote the upstream socket or the credentials', async () => {
    const server = await fake('greet-then-silent');
    const res = await createOn(server.port, '', { password: 'do-not-echo-this-pw' });
    expect(res.statusCode).toBe(504);
    expect(res.body).not.toContain('do-not-echo-this-pw');
  });
});

describe('an account saved with verify=false that points at a failing server', () => {
  it('a listing on a silent server is 504 within the bound, and so is the next one (no leaked slot or waiter)', async () => {
    const server = await fake('silent');
    const created = await createOn(server.port, '?verify=false', { id: 'silent-acct' });
    expect(created.statusCode, created.body).toBe(201);
    expect(server.accepted).toBe(0); // verify=false dials nothing

    for (const attempt of [1, 2]) {
      const { res, elapsedMs } = await timed(() => gw.app.inject({ url: '/v1/accounts/silent-acct/mailboxes' }));
      expectProblem(res, 504, 'UPSTREAM_TIMEOUT');
      expect(elapsedMs, `attempt ${attempt}`).toBeLessThan(ANSWER_BOUND_MS);
    }
    expect(server.accepted).toBe(2);
    await eventually(() => server.open === 0);
    const stats = gw.app.services.imap.poolStats().get('silent-acct');
    expect(stats).toMatchObject({ open: 0, busy: 0, connecting: 0, waiting: 0 });

    // Requests that overlap a timing-out connect each get an answer too (one session per account here).
    const both = await Promise.all([
      timed(() => gw.app.inject({ url: '/v1/accounts/silent-acct/mailboxes/INBOX/messages' })),
      timed(() => gw.app.inject({ url: '/v1/accounts/silent-acct/mailboxes' })),
    ]);
    // The second waits for the first attempt's slot, then makes its own bounded attempt.
    for (const { res, elapsedMs } of both) {
      expectProblem(res, 504, 'UPSTREAM_TIMEOUT');
      expect(elapsedMs).toBeLessThan(ANSWER_BOUND_MS);
    }

    // Deleting the account leaves nothing behind.
    expect((await gw.app.inject({ method: 'DELETE', url: '/v1/accounts/silent-acct' })).statusCode).toBe(204);
    await eventually(() => server.open === 0);
  });

  it('a listing on a server that hangs up is 502 UPSTREAM_ERROR at once', async () => {
    const server = await fake('close');
    const created = await createOn(server.port, '?verify=false', { id: 'closing-acct' });
    expect(created.statusCode, created.body).toBe(201);
    const { res, elapsedMs } = await timed(() => gw.app.inject({ url: '/v1/accounts/closing-acct/mailboxes' }));
    expectProblem(res, 502, 'UPSTREAM_ERROR');
    expect(elapsedMs).toBeLessThan(UPSTREAM_TIMEOUT_MS);
  });
});

describe('a Dovecot session killed from outside', () => {
  it('is evicted: the next listing opens a new session and succeeds', async () => {
    const user = await dovecot.createUser('kick');
    const account = await createImapAccount(gw.app, dovecot, user);
    const first = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
    expect(first.statusCode, first.body).toBe(200);
    const before = await sessionPids(user.username);
    expect(before).toHaveLength(1);

    await dovecot.doveadm(['kick', user.username]);
    await eventually(async () => (await sessionPids(user.username)).length === 0);

    const second = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
    expect(second.statusCode, second.body).toBe(200);
    const after = await sessionPids(user.username);
    expect(after).toHaveLength(1);
    expect(after).not.toEqual(before);
  });

  // The pool cannot know a session is dead before it reads the BYE, so the request that finds out must
  // not pay for it: an idempotent request on a reused session that turns out closed is retried once on
  // a fresh session (as undici does for idempotent requests on a reused keep-alive socket).
  it('the next listing succeeds even when it comes before the gateway has read the server\'s goodbye', async () => {
    const user = await dovecot.createUser('kick2');
    const account = await createImapAccount(gw.app, dovecot, user);
    expect((await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes` })).statusCode).toBe(200);
    expect(await sessionPids(user.username)).toHaveLength(1);
    // Kick and wait for the server to hang up while this process's event loop stands still: the
    // BYE and the FIN sit unread in the socket buffer, so the pool still holds the session as idle
    // when the next request arrives (the state a connection dropped by a NAT or a restart leaves).
    execFileSync('doveadm', ['-c', dovecot.confPath, 'kick', user.username], { env: sbinEnv() });
    const deadline = Date.now() + 3000;
    while (execFileSync('doveadm', ['-c', dovecot.confPath, 'who', '-1', user.username], { env: sbinEnv() }).toString().includes(user.username)) {
      if (Date.now() > deadline) throw new Error('the kicked session did not end');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
    const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes` });
    expect(res.statusCode, res.body).toBe(200);
    expect(await sessionPids(user.username)).toHaveLength(1);
  });
});

describe('a Dovecot user at its connection limit (mail_max_userip_connections)', () => {
  it('is 502 UPSTREAM_ERROR naming the limit, never UPSTREAM_AUTH_FAILED for a right password; creation works once there is room', async () => {
    const user = await dovecot.createUser('limit');
    const clients = await openSessions(user, DOVECOT_USERIP_LIMIT);
    const id = 'at-limit';
    try {
      const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: imapAccountBody(dovecot, user, { id }) });
      const problem = expectProblem(res, 502, 'UPSTREAM_ERROR');
      expect(problem.detail).toMatch(/connection/i);
      expect((await gw.app.inject({ url: `/v1/accounts/${id}` })).statusCode).toBe(404);

      // An account saved unverified hits the same limit at use time: same answer.
      const saved = await gw.app.inject({
        method: 'POST',
        url: '/v1/accounts?verify=false',
        payload: imapAccountBody(dovecot, user, { id }),
      });
      expect(saved.statusCode).toBe(201);
      expectProblem(await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` }), 502, 'UPSTREAM_ERROR');
    } finally {
      await Promise.all(clients.map((c) => c.logout().catch(() => c.close())));
    }
    await eventually(async () => (await sessionPids(user.username)).length === 0);
    expect((await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` })).statusCode).toBe(200);
    expect((await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${id}` })).statusCode).toBe(204);
  });
});

/** The test Dovecot's per-user-and-IP connection cap (test/support/dovecot.ts starts it with 50). */
const DOVECOT_USERIP_LIMIT = 50;

async function openSessions(user: DovecotUser, count: number): Promise<ImapFlow[]> {
  const clients: ImapFlow[] = [];
  for (let i = 0; i < count; i += 10) {
    const batch = Array.from({ length: Math.min(10, count - i) }, () => {
      const client = directImapClient(dovecot, user);
      clients.push(client);
      return client.connect();
    });
    await Promise.all(batch);
  }
  return clients;
}

/** Pids of the user's IMAP processes as Dovecot's own `who` lists them (one line per connection). */
async function sessionPids(username: string): Promise<string[]> {
  const out = await dovecot.doveadm(['who', '-1', username]);
  const pids: string[] = [];
  for (const line of out.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // `who -1` columns: username, proto, pid, ip.
    if (fields[0] === username && fields[1] === 'imap') pids.push(fields[2] ?? '');
  }
  return pids.sort();
}
