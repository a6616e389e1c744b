import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/cache/keys.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();
const secretKey = randomBytes(32).toString('hex');

let redisServer: RedisServer;
let redis: Redis;
let gw: TestGateway;

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  gw = await startGateway({ REDIS_URL: redisServer.url, SECRET_KEY: secretKey });
});

afterAll(async () => {
  await gw?.close();
  redis?.disconnect();
  await redisServer?.stop();
});

describe('with Redis', () => {
  it('keeps accounts in Redis (sealed), caches parsed messages there, and purges them with the account', async () => {
    const user = await dovecot.createUser('redis');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Cached one', body: 'cached body' })]);
    const account = await createImapAccount(gw.app, dovecot, user);

    const stored = await redis.hget(keys.accounts(), account);
    expect(stored).not.toBeNull();
    expect(stored).not.toContain(user.password);
    expect(await redis.ttl(keys.accounts())).toBe(-1); // account records never expire

    const page = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` })).json();
    const id = page.messages[0].id as string;
    const first = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}` });
    expect(first.json().text).toContain('cached body');

    const cachedKeys = await redis.keys(`${keys.accountCachePrefix(account).replace(/[{}]/g, '\\$&')}*`);
    expect(cachedKeys.length).toBeGreaterThan(0);
    for (const key of cachedKeys) {
      const ttl = await redis.ttl(key);
      expect(ttl).toBeGreaterThan(0); // every cache entry has a TTL
    }

    const second = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}` });
    expect(second.json()).toEqual(first.json());

    expect((await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${account}` })).statusCode).toBe(204);
    expect(await redis.hget(keys.accounts(), account)).toBeNull();
    for (const key of cachedKeys) expect(await redis.exists(key)).toBe(0);
  });

  it('answers 503 while Redis (the account store) is down, and recovers by itself', async () => {
    const user = await dovecot.createUser('redis-down');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Outage' })]);
    const account = await createImapAccount(gw.app, dovecot, user);
    await redisServer.kill();
    try {
      // Accounts live in Redis: without it the gateway cannot know the account, and says so.
      const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
      expect(res.statusCode).toBe(503);
      expect(res.json().code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await redisServer.restart();
    }
    // The gateway reconnects by itself. (This throwaway Redis keeps no data across a kill, so the
    // account is gone: the answer is a clean 404, no longer a 503.)
    await expect.poll(async () => (await gw.app.inject({ url: '/ready' })).statusCode, { timeout: 10_000 }).toBe(200);
    const after = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
    expect(after.json().code).toBe('ACCOUNT_NOT_FOUND');
  });
});
