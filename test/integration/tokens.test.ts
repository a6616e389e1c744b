/**
 * Tenants: admin keys hand out access tokens (accounts × scopes); one hook enforces them on every
 * route; requests are limited per key, token and client address, across processes with Redis.
 * Against the run's real Dovecot, and a Redis of this file's own (its counters must not be shared).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../support/assertions.js';
import { imapAccountBody, startGateway, type TestGateway } from '../support/gateway.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers, type DovecotUser } from '../support/servers.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();
const ADMIN = `admin-${randomBytes(16).toString('hex')}`;
const admin = { authorization: `Bearer ${ADMIN}` };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function newToken(gw: TestGateway, body: Record<string, unknown>): Promise<{ id: string; token: string }> {
  const res = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; token: string };
}

describe('scoped access tokens', () => {
  let gw: TestGateway;
  let alice: DovecotUser;
  let bob: DovecotUser;
  beforeAll(async () => {
    gw = await startGateway({ API_KEYS: ADMIN });
    alice = await dovecot.createUser('tokalice');
    bob = await dovecot.createUser('tokbob');
    await dovecot.seedMaildir(alice.username, [textMessage({ subject: 'For Alice' })]);
    for (const [id, user] of [['alice', alice], ['bob', bob]] as const) {
      const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', headers: admin, payload: imapAccountBody(dovecot, user, { id }) });
      expect(res.statusCode, res.body).toBe(201);
    }
  });
  afterAll(async () => gw?.close());

  it('are created by admin keys only, shown once, and listed without their value', async () => {
    const created = await newToken(gw, { accounts: ['alice'], scopes: ['read'], description: 'Alice in the web app' });
    expect(created.token).toMatch(/^mgw_[A-Za-z0-9_-]{43}$/);

    const listed = await gw.app.inject({ url: '/v1/tokens', headers: admin });
    expect(listed.statusCode).toBe(200);
    expect(listed.body).not.toContain(created.token);
    expect(listed.json().tokens).toContainEqual(expect.objectContaining({ id: created.id, accounts: ['alice'], scopes: ['read'], description: 'Alice in the web app' }));
    expect((await readFile(path.join(gw.dataDir, 'tokens.json'), 'utf8')).includes(created.token)).toBe(false);

    // A token cannot make tokens, nor see them; nobody without a key can.
    expectProblem(await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: bearer(created.token), payload: { accounts: ['*'], scopes: ['read'] } }), 403, 'FORBIDDEN');
    expectProblem(await gw.app.inject({ url: '/v1/tokens', headers: bearer(created.token) }), 403, 'FORBIDDEN');
    expectProblem(await gw.app.inject({ url: '/v1/tokens' }), 401, 'UNAUTHORIZED');
    expectProblem(await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { accounts: ['alice'], scopes: ['read'], expiresAt: '2020-01-01T00:00:00Z' } }), 400, 'VALIDATION_FAILED');
    expectProblem(await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { accounts: ['alice'], scopes: ['admin'] } }), 400, 'VALIDATION_FAILED');
    // A leap second is a valid date-time that no Date can hold: 400, not 500.
    expectProblem(await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { accounts: ['alice'], scopes: ['read'], expiresAt: '2030-06-30T23:59:60Z' } }), 400, 'VALIDATION_FAILED');
  });

  it('see only their accounts: others are 404 as if they did not exist, and the list holds only their own', async () => {
    const { token } = await newToken(gw, { accounts: ['alice'], scopes: ['read'] });
    const own = await gw.app.inject({ url: '/v1/accounts/alice/mailboxes/INBOX/messages', headers: bearer(token) });
    expect(own.statusCode, own.body).toBe(200);
    expect(own.json().messages.map((m: { subject: string }) => m.subject)).toEqual(['For Alice']);

    const other = expectProblem(await gw.app.inject({ url: '/v1/accounts/bob/mailboxes', headers: bearer(token) }), 404, 'ACCOUNT_NOT_FOUND');
    const missing = expectProblem(await gw.app.inject({ url: '/v1/accounts/nobody/mailboxes', headers: bearer(token) }), 404, 'ACCOUNT_NOT_FOUND');
    expect(other.detail.replace('bob', 'X')).toBe(missing.detail.replace('nobody', 'X'));
    // Even a route the token lacks the scope for: existence first, so nothing is learnt of bob.
    expectProblem(await gw.app.inject({ method: 'DELETE', url: '/v1/accounts/bob', headers: bearer(token) }), 404, 'ACCOUNT_NOT_FOUND');

    const list = await gw.app.inject({ url: '/v1/accounts', headers: bearer(token) });
    expect(list.json().accounts.map((a: { id: string }) => a.id)).toEqual(['alice']);
    const all = await gw.app.inject({ url: '/v1/accounts', headers: admin });
    expect(all.json().accounts.map((a: { id: string }) => a.id)).toEqual(expect.arrayContaining(['alice', 'bob']));

    const everyAccount = await newToken(gw, { accounts: ['*'], scopes: ['read'] });
    expect((await gw.app.inject({ url: '/v1/accounts/bob/mailboxes', headers: bearer(everyAccount.token) })).statusCode).toBe(200);
  });

  it('reach only the routes of their scopes: others are 403 FORBIDDEN naming the scope, and nothing is written', async () => {
    const reader = await newToken(gw, { accounts: ['alice'], scopes: ['read'] });
    const writer = await newToken(gw, { accounts: ['alice'], scopes: ['write'] });
    const page = (await gw.app.inject({ url: '/v1/accounts/alice/mailboxes/INBOX/messages', headers: admin })).json();
    const id = page.messages[0].id as string;
    const flag: InjectOptions = { method: 'PATCH', url: `/v1/accounts/alice/mailboxes/INBOX/messages/${id}`, payload: { flagged: true } };

    const refused = expectProblem(await gw.app.inject({ ...flag, headers: bearer(reader.token) }), 403, 'FORBIDDEN');
    expect(refused.detail).toContain('write');
    const after = (await gw.app.inject({ url: '/v1/accounts/alice/mailboxes/INBOX/messages', headers: admin })).json();
    expect(after.messages[0].flagged).toBe(false);

    expect((await gw.app.inject({ ...flag, headers: bearer(writer.token) })).statusCode).toBe(200);
    expectProblem(await gw.app.inject({ url: '/v1/accounts/alice/mailboxes', headers: bearer(writer.token) }), 403, 'FORBIDDEN');

    // Account administration takes an admin key, whatever the token's scopes.
    const both = await newToken(gw, { accounts: ['*'], scopes: ['read', 'write', 'send', 'events'] });
    expectProblem(await gw.app.inject({ method: 'PATCH', url: '/v1/accounts/alice', headers: bearer(both.token), payload: { name: 'x' } }), 403, 'FORBIDDEN');
    expectProblem(await gw.app.inject({ method: 'POST', url: '/v1/accounts', headers: bearer(both.token), payload: imapAccountBody(dovecot, bob, { id: 'bob2' }) }), 403, 'FORBIDDEN');
    expectProblem(await gw.app.inject({ url: '/metrics', headers: bearer(both.token) }), 403, 'FORBIDDEN');
  });

  it('are refused with 401 once deleted or expired, and a wrong key as well as no key', async () => {
    const { id, token } = await newToken(gw, { accounts: ['alice'], scopes: ['read'] });
    expect((await gw.app.inject({ url: '/v1/accounts/alice', headers: bearer(token) })).statusCode).toBe(200);
    expect((await gw.app.inject({ method: 'DELETE', url: `/v1/tokens/${id}`, headers: admin })).statusCode).toBe(204);
    expectProblem(await gw.app.inject({ url: '/v1/accounts/alice', headers: bearer(token) }), 401, 'UNAUTHORIZED');
    expectProblem(await gw.app.inject({ method: 'DELETE', url: `/v1/tokens/${id}`, headers: admin }), 404, 'TOKEN_NOT_FOUND');

    const soon = await newToken(gw, { accounts: ['alice'], scopes: ['read'], expiresAt: new Date(Date.now() + 1500).toISOString() });
    expect((await gw.app.inject({ url: '/v1/accounts/alice', headers: bearer(soon.token) })).statusCode).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(expectProblem(await gw.app.inject({ url: '/v1/accounts/alice', headers: bearer(soon.token) }), 401, 'UNAUTHORIZED').detail).toMatch(/expired/);

    const wrong = await gw.app.inject({ url: '/v1/accounts', headers: { authorization: 'Bearer not-the-admin-key-at-all' } });
    expectProblem(wrong, 401, 'UNAUTHORIZED');
    expect(wrong.headers['www-authenticate']).toBe('Bearer realm="mailgw"');
  });
});

describe('rate limits', () => {
  it('limit each key and token per minute with RateLimit headers, then answer 429 RATE_LIMITED with Retry-After', async () => {
    const gw = await startGateway({ API_KEYS: ADMIN, RATE_LIMIT_PER_MINUTE: '3' });
    try {
      for (let i = 1; i <= 3; i++) {
        const res = await gw.app.inject({ url: '/v1/accounts', headers: admin });
        expect(res.statusCode).toBe(200);
        expect(res.headers['ratelimit-limit']).toBe('3');
        expect(res.headers['ratelimit-remaining']).toBe(String(3 - i));
        expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThan(0);
        expect(Number(res.headers['ratelimit-reset'])).toBeLessThanOrEqual(60);
      }
      const over = expectProblem(await gw.app.inject({ url: '/v1/accounts', headers: admin }), 429, 'RATE_LIMITED');
      expect(over.detail).toMatch(/3 requests per minute/);
      const retry = await gw.app.inject({ url: '/v1/accounts', headers: admin });
      expect(Number(retry.headers['retry-after'])).toBeGreaterThan(0);
      expect(retry.headers['ratelimit-remaining']).toBe('0');
      // Probes are never limited.
      expect((await gw.app.inject({ url: '/health' })).statusCode).toBe(200);
    } finally {
      await gw.close();
    }
  });

  it('limit requests without a valid key per client address, so guessing keys is slow', async () => {
    const gw = await startGateway({ API_KEYS: ADMIN, RATE_LIMIT_ANONYMOUS_PER_MINUTE: '2' });
    try {
      expectProblem(await gw.app.inject({ url: '/v1/accounts', headers: { authorization: 'Bearer guess-1-xxxxxxxxxxxxxxx' } }), 401, 'UNAUTHORIZED');
      expectProblem(await gw.app.inject({ url: '/v1/accounts', headers: { authorization: `Bearer mgw_${'a'.repeat(43)}` } }), 401, 'UNAUTHORIZED');
      expectProblem(await gw.app.inject({ url: '/v1/accounts', headers: { authorization: 'Bearer guess-3-xxxxxxxxxxxxxxx' } }), 429, 'RATE_LIMITED');
      expectProblem(await gw.app.inject({ url: '/v1/nowhere' }), 429, 'RATE_LIMITED');
      // Another address has its own count, and its valid key counts against the key, not the address.
      expectProblem(await gw.app.inject({ url: '/v1/accounts', remoteAddress: '127.0.0.9' }), 401, 'UNAUTHORIZED');
      for (let i = 0; i < 3; i++) expect((await gw.app.inject({ url: '/v1/accounts', remoteAddress: '127.0.0.9', headers: admin })).statusCode).toBe(200);
    } finally {
      await gw.close();
    }
  });

  it('answer 429 to an address over its limit whatever it presents, so a right guess looks like a wrong one', async () => {
    const gw = await startGateway({ API_KEYS: ADMIN, RATE_LIMIT_ANONYMOUS_PER_MINUTE: '2' });
    try {
      for (const guess of ['guess-1-xxxxxxxxxxxxxxx', 'guess-2-xxxxxxxxxxxxxxx']) {
        expectProblem(await gw.app.inject({ url: '/v1/accounts', headers: { authorization: `Bearer ${guess}` } }), 401, 'UNAUTHORIZED');
      }
      expectProblem(await gw.app.inject({ url: '/v1/accounts', headers: admin }), 429, 'RATE_LIMITED');
      // IPv6 addresses of one /64 are one address: a host cannot rotate through its subnet.
      for (const [i, address] of ['2001:db8::1', '2001:db8::2'].entries()) {
        expectProblem(await gw.app.inject({ url: '/v1/accounts', remoteAddress: address, headers: { authorization: `Bearer wrong-${i}-xxxxxxxxxxxxxx` } }), 401, 'UNAUTHORIZED');
      }
      expectProblem(await gw.app.inject({ url: '/v1/accounts', remoteAddress: '2001:db8::3' }), 429, 'RATE_LIMITED');
      expectProblem(await gw.app.inject({ url: '/v1/accounts', remoteAddress: '2001:db8:1::1' }), 401, 'UNAUTHORIZED');
    } finally {
      await gw.close();
    }
  });

  it('give account creation, which dials out, a lower limit of its own, and 0 turns a limit off', async () => {
    const gw = await startGateway({ API_KEYS: ADMIN, RATE_LIMIT_ACCOUNT_CREATION_PER_MINUTE: '1', RATE_LIMIT_PER_MINUTE: '0' });
    try {
      const user = await dovecot.createUser('toklimit');
      const create = (id: string) => gw.app.inject({ method: 'POST', url: '/v1/accounts?verify=false', headers: admin, payload: imapAccountBody(dovecot, user, { id }) });
      expect((await create('limited-1')).statusCode).toBe(201);
      expectProblem(await create('limited-2'), 429, 'RATE_LIMITED');
      for (let i = 0; i < 20; i++) {
        const res = await gw.app.inject({ url: '/v1/accounts', headers: admin });
        expect(res.statusCode).toBe(200);
        expect(res.headers['ratelimit-limit']).toBeUndefined();
      }
    } finally {
      await gw.close();
    }
  });
});

describe('across gateway processes on one Redis', () => {
  let redis: RedisServer;
  let one: TestGateway;
  let two: TestGateway;
  beforeAll(async () => {
    redis = await startRedis();
    const env = { API_KEYS: ADMIN, REDIS_URL: redis.url, SECRET_KEY: randomBytes(32).toString('hex'), RATE_LIMIT_PER_MINUTE: '5' };
    one = await startGateway(env);
    two = await startGateway(env);
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
    await redis?.stop();
  });

  it('count a token against one limit wherever its requests land', async () => {
    const { token } = await newToken(one, { accounts: ['*'], scopes: ['read'] });
    const remaining: string[] = [];
    for (const gw of [one, two, one, two, one]) {
      // Each process adds its counts to Redis every 50 ms: beyond that, every process sees them all.
      await new Promise((resolve) => setTimeout(resolve, 120));
      const res = await gw.app.inject({ url: '/v1/accounts', headers: bearer(token) });
      expect(res.statusCode, res.body).toBe(200);
      remaining.push(String(res.headers['ratelimit-remaining']));
    }
    expect(remaining).toEqual(['4', '3', '2', '1', '0']);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expectProblem(await two.app.inject({ url: '/v1/accounts', headers: bearer(token) }), 429, 'RATE_LIMITED');
  });

  it('refuse a token deleted through another process within a second', async () => {
    const { id, token } = await newToken(one, { accounts: ['*'], scopes: ['read'] });
    expect((await two.app.inject({ url: '/v1/tokens', headers: admin })).json().tokens.map((t: { id: string }) => t.id)).toContain(id);
    // Two has read the token now, and uses it.
    const before = await two.app.inject({ url: '/v1/accounts', headers: bearer(token) });
    expect(before.statusCode).toBe(200);
    expect((await one.app.inject({ method: 'DELETE', url: `/v1/tokens/${id}`, headers: admin })).statusCode).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 1050));
    expectProblem(await two.app.inject({ url: '/v1/accounts', headers: bearer(token) }), 401, 'UNAUTHORIZED');
  });
});
