/**
 * Access tokens from refresh tokens (src/accounts/oauth2/), against the test's own OAuth2 provider
 * (RFC 6749 refresh grant) and, for what processes share, a real Redis.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessTokens, type AccessTokensOptions, type OAuth2Grant } from '../../src/accounts/oauth2/access-tokens.js';
import { GrantRefused } from '../../src/accounts/oauth2/token-endpoint.js';
import { MemoryTokenState, RedisTokenState, type TokenStateStore } from '../../src/accounts/oauth2/token-state.js';
import { createSealer } from '../../src/accounts/sealing.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { startOAuth2Provider, type OAuth2Provider } from '../support/oauth2-provider.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const log = pino({ level: 'silent' });
const sealer = createSealer(randomBytes(32));
const egress = createEgressPolicy(['127.0.0.1/32']);

let provider: OAuth2Provider;
let redisServer: RedisServer;
const clients: Redis[] = [];

beforeAll(async () => {
  [provider, redisServer] = await Promise.all([startOAuth2Provider(), startRedis()]);
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await Promise.all([provider?.stop(), redisServer?.stop()]);
});

function grantFor(username: string, name: OAuth2Grant['name'] = 'mail'): OAuth2Grant {
  const clientId = `client-${username}`;
  const refreshToken = provider.grant({ username, clientId, clientSecret: 'shh' });
  return { grantId: `g_${randomBytes(6).toString('hex')}`, accountId: `acc-${username}-${randomBytes(3).toString('hex')}`, name, tokenUrl: provider.tokenUrl, clientId, clientSecret: 'shh', refreshToken, scope: 'mail' };
}

function redisState(): TokenStateStore {
  const client = new Redis(redisServer.url);
  clients.push(client);
  return new RedisTokenState(client);
}

function tokens(state: TokenStateStore, extra: Partial<AccessTokensOptions> = {}): AccessTokens & { kept: string[]; refused: string[]; recovered: number } {
  const kept: string[] = [];
  const refused: string[] = [];
  const counters = { recovered: 0 };
  const manager = new AccessTokens({
    state,
    sealer,
    egress,
    timeoutMs: 2_000,
    log,
    keepRefreshToken: async (_grant, refreshToken) => void kept.push(refreshToken),
    onRefused: (_accountId, detail) => void refused.push(detail),
    onRecovered: () => void (counters.recovered += 1),
    ...extra,
  });
  return Object.assign(manager, { kept, refused, get recovered() { return counters.recovered; } });
}

const asked = (grant: OAuth2Grant): number => provider.tokenRequests.filter((r) => r.clientId === grant.clientId).length;

describe('OAuth2 access tokens', () => {
  it('renews at first use, keeps the token while more than 60 s remain, and renews ahead of expiry', async () => {
    let now = Date.now();
    const manager = tokens(new MemoryTokenState(() => now), { now: () => now });
    const grant = grantFor('alice');
    provider.setExpiresIn(120);
    const first = await manager.token(grant);
    expect(asked(grant)).toBe(1);
    expect(provider.tokenRequests.at(-1)).toMatchObject({ grantType: 'refresh_token', refreshToken: grant.refreshToken, clientSecret: 'shh', scope: 'mail' });
    expect(await manager.token(grant)).toBe(first);
    now += 59_000; // 61 s left
    expect(await manager.token(grant)).toBe(first);
    now += 2_000; // 59 s left: renewed ahead of expiry
    const second = await manager.token(grant);
    expect(second).not.toBe(first);
    expect(asked(grant)).toBe(2);
    provider.setExpiresIn(3600);
  });

  it('answers a different token when a server refused the current one, renewing once', async () => {
    const manager = tokens(new MemoryTokenState());
    const grant = grantFor('bob');
    const first = await manager.token(grant);
    const again = await Promise.all([manager.token(grant, first), manager.token(grant, first), manager.token(grant, first)]);
    expect(new Set(again).size).toBe(1);
    expect(again[0]).not.toBe(first);
    expect(asked(grant)).toBe(2);
  });

  it('20 concurrent requests after expiry cause one renewal; so do two processes sharing Redis', async () => {
    const grant = grantFor('carol');
    const one = tokens(new MemoryTokenState());
    const results = await Promise.all(Array.from({ length: 20 }, () => one.token(grant)));
    expect(new Set(results).size).toBe(1);
    expect(asked(grant)).toBe(1);

    // Two processes: each has its own manager; they share the token and the renewal lease in Redis.
    const shared = grantFor('dave');
    provider.setTokenDelay(200);
    try {
      const [a, b] = [tokens(redisState()), tokens(redisState())];
      const both = await Promise.all([...Array.from({ length: 10 }, () => a.token(shared)), ...Array.from({ length: 10 }, () => b.token(shared))]);
      expect(new Set(both).size).toBe(1);
      expect(asked(shared)).toBe(1);
    } finally {
      provider.setTokenDelay(0);
    }
  });

  it('keeps a rotated refresh token: every later renewal (in any process) uses the newest', async () => {
    provider.setRotation(true);
    try {
      const grant = grantFor('erin');
      const [a, b] = [tokens(redisState()), tokens(redisState())];
      const first = await a.token(grant);
      expect(a.kept).toEqual([provider.currentRefreshToken(grant.refreshToken)]);
      expect(await a.latestRefreshToken(grant)).toBe(a.kept[0]);
      // The other process still has the account record as it was: it renews with the rotated token.
      const second = await b.token(grant, first);
      expect(second).not.toBe(first);
      expect(provider.tokenRequests.filter((r) => r.clientId === grant.clientId).map((r) => r.refreshToken)).toEqual([grant.refreshToken, a.kept[0]]);
      expect(b.kept).toEqual([provider.currentRefreshToken(grant.refreshToken)]);
    } finally {
      provider.setRotation(false);
    }
  });

  it('a refused grant is 422 with the reason, told once, and not asked again before its back-off', async () => {
    let now = Date.now();
    const manager = tokens(new MemoryTokenState(() => now), { now: () => now, refusalBackoffMs: { min: 60_000, max: 600_000 } });
    const grant = grantFor('frank');
    provider.revoke(grant.refreshToken);
    const err = await manager.token(grant).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrantRefused);
    expect(err).toMatchObject({ code: 'UPSTREAM_AUTH_FAILED', status: 422, message: expect.stringMatching(/refused the refresh token \(invalid_grant/) });
    expect(manager.refused).toHaveLength(1);
    for (let i = 0; i < 5; i++) await expect(manager.token(grant)).rejects.toMatchObject({ code: 'UPSTREAM_AUTH_FAILED', message: expect.stringMatching(/not asked again before/) });
    expect(asked(grant)).toBe(1);
    now += 61_000;
    await expect(manager.token(grant)).rejects.toBeInstanceOf(GrantRefused);
    expect(asked(grant)).toBe(2);
    // The back-off doubles; the refusal was told only once.
    now += 61_000;
    await expect(manager.token(grant)).rejects.toBeInstanceOf(GrantRefused);
    expect(asked(grant)).toBe(2);
    expect(manager.refused).toHaveLength(1);
  });

  it('bounds a token endpoint that does not answer, and tells an error from a refusal', async () => {
    const manager = tokens(new MemoryTokenState(), { timeoutMs: 300, failureSharedMs: 200 });
    const grant = grantFor('gina');
    provider.setTokenDelay(2_000);
    try {
      const started = Date.now();
      await expect(manager.token(grant)).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT', status: 504 });
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      provider.setTokenDelay(0);
    }
    expect(manager.refused).toEqual([]);
    const broken = { ...grant, grantId: `${grant.grantId}-broken`, tokenUrl: `${provider.url}/missing` };
    await expect(manager.token(broken)).rejects.toMatchObject({ code: 'UPSTREAM_ERROR', message: expect.stringMatching(/HTTP 404/) });
    // The egress policy applies to the token URL.
    const elsewhere = { ...grant, tokenUrl: 'http://10.0.0.1/token' };
    await expect(new AccessTokens({ state: new MemoryTokenState(), sealer, egress: createEgressPolicy([]), timeoutMs: 300, log, keepRefreshToken: async () => undefined }).token(elsewhere)).rejects.toMatchObject({
      code: 'HOST_NOT_ALLOWED',
    });
    // And it works again once the endpoint answers (and the failure is no longer answered).
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(typeof (await manager.token(grant))).toBe('string');
  });

  it('a renewal that failed answers its error to the renewals waiting for it in other processes, without asking again', async () => {
    const grant = grantFor('hana');
    const [a, b] = [tokens(redisState(), { timeoutMs: 400 }), tokens(redisState(), { timeoutMs: 400 })];
    provider.setTokenDelay(2_000);
    try {
      const first = a.token(grant);
      await expect.poll(() => asked(grant)).toBe(1);
      // b waits for a's renewal; when it times out, b answers the same failure at once.
      const started = Date.now();
      const [ra, rb] = await Promise.allSettled([first, b.token(grant)]);
      expect(ra).toMatchObject({ status: 'rejected', reason: { code: 'UPSTREAM_TIMEOUT' } });
      expect(rb).toMatchObject({ status: 'rejected', reason: { code: 'UPSTREAM_TIMEOUT' } });
      expect(Date.now() - started).toBeLessThan(1_500);
      // A new request within the failure's 5 s is answered the failure too: the provider was asked once.
      await expect(b.token(grant)).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
      expect(asked(grant)).toBe(1);
    } finally {
      provider.setTokenDelay(0);
    }
  });
});
