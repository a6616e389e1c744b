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
  redis.on('error', () => undefined); // the test kills Redis on purpose
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

  it('keeps serving reads, uncached, while Redis is down; writes and unknown accounts answer 503; recovers by itself', async () => {
    const user = await dovecot.createUser('redis-down');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Outage', body: 'still readable' })]);
    const account = await createImapAccount(gw.app, dovecot, user);
    const url = `/v1/accounts/${account}/mailboxes/INBOX/messages`;
    const id = (await gw.app.inject({ url })).json().messages[0].id as string;
    const degradations = async () =>
      Number(/mailgw_redis_degradations_total (\d+)/.exec((await gw.app.inject({ url: '/metrics' })).body)?.[1] ?? 0);
    const before = await degradations();

    await redisServer.kill();
    try {
      const listing = await gw.app.inject({ url });
      expect(listing.statusCode).toBe(200);
      expect(listing.json().messages[0].subject).toBe('Outage');
      const message = await gw.app.inject({ url: `${url}/${id}` });
      expect(message.statusCode).toBe(200);
      expect(message.json().text).toContain('still readable');
      expect(await degradations()).toBeGreaterThan(before);

      const unknown = await gw.app.inject({ url: '/v1/accounts/never-seen/mailboxes/INBOX/messages' });
      expect(unknown.statusCode).toBe(503);
      expect(unknown.json().code).toBe('SERVICE_UNAVAILABLE');
      const create = await gw.app.inject({
        method: 'POST',
        url: '/v1/accounts?verify=false',
        payload: { protocol: 'imap', host: dovecot.host, port: dovecot.imapPort, security: 'none', username: 'x', password: 'y' },
      });
      expect(create.statusCode).toBe(503);
    } finally {
      await redisServer.restart();
    }
    // The gateway reconnects by itself. (This throwaway Redis keeps no data across a kill, so the
    // account is gone: once the record this process read is older than ACCOUNT_RECORD_FRESH_MS,
    // the answer is a clean 404, no longer served from memory.)
    await expect.poll(async () => (await gw.app.inject({ url: '/ready' })).json().status, { timeout: 10_000 }).toBe('ok');
    await expect.poll(async () => (await gw.app.inject({ url })).json().code, { timeout: 5_000 }).toBe('ACCOUNT_NOT_FOUND');
  });
});
