/**
 * RedisAccountStore against a real redis-server. The store uses the fixed key `keys.accounts()`, so this
 * file starts its own Redis instead of sharing the run's (other files would see its accounts).
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisAccountStore } from '../../src/accounts/redis-store.js';
import { accountRecord } from '../support/account-records.js';
import { rejection } from '../support/assertions.js';
import { keys } from '../../src/cache/keys.js';
import { GatewayError } from '../../src/errors.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../support/redis.js';

const record = accountRecord;

function client(url: string): Redis {
  // Fail fast while disconnected (a queued command is failed after two quick reconnect attempts);
  // the store's own time bound is tested separately below.
  const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  redis.on('error', () => undefined); // outages are expected here; keep ioredis from logging them
  return redis;
}

describe('RedisAccountStore (single Redis)', () => {
  let server: RedisServer;
  let redis: Redis;
  let store: RedisAccountStore;

  beforeAll(async () => {
    server = await startRedis();
    redis = client(server.url);
    store = new RedisAccountStore(redis, { operationTimeoutMs: 3_000 });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });
  beforeEach(async () => {
    await redis.del(keys.accounts());
  });

  it('stores a record as JSON in the accounts hash, with no TTL, and reads it back', async () => {
    const alice = record('alice', { name: 'Alice at work', authMethod: 'accessToken' });
    await store.create(alice);
    expect(await store.get('alice')).toEqual(alice);
    expect(await store.get('nobody')).toBeNull();

    expect(JSON.parse((await redis.hget(keys.accounts(), 'alice'))!)).toEqual(alice);
    expect(await redis.ttl(keys.accounts())).toBe(-1);
  });

  it('lists every record sorted by id', async () => {
    // '__proto__' is a legal account id ([A-Za-z0-9._-]); it must not vanish into an object prototype.
    for (const id of ['mallory', 'Bob', 'alice', '__proto__', 'zoe', 'a.b_c-1']) await store.create(record(id));
    expect((await store.list()).map((r) => r.id)).toEqual(['Bob', '__proto__', 'a.b_c-1', 'alice', 'mallory', 'zoe']);
    expect((await store.get('__proto__'))?.id).toBe('__proto__');
  });

  it('create refuses a taken id with ACCOUNT_EXISTS and keeps the first record', async () => {
    await store.create(record('bob', { name: 'first' }));
    const err = await rejection(store.create(record('bob', { name: 'second' })));
    expect(err.code).toBe('ACCOUNT_EXISTS');
    expect(err.status).toBe(409);
    expect((await store.get('bob'))?.name).toBe('first');
  });

  it('of racing creates of one id from two gateways, exactly one wins', async () => {
    const other = client(server.url);
    try {
      const otherStore = new RedisAccountStore(other);
      const attempts = Array.from({ length: 10 }, (_, i) =>
        (i % 2 === 0 ? store : otherStore).create(record('race', { name: `attempt-${i}` })),
      );
      const results = await Promise.allSettled(attempts);
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect((r.reason as GatewayError).code).toBe('ACCOUNT_EXISTS');
      }
      const winner = results.findIndex((r) => r.status === 'fulfilled');
      expect((await store.get('race'))?.name).toBe(`attempt-${winner}`);
    } finally {
      other.disconnect();
    }
  });

  it('update replaces an existing record; a missing one is ACCOUNT_NOT_FOUND and is not created', async () => {
    await store.create(record('carol'));
    const changed = record('carol', { host: 'mail.example.org', port: 143, security: 'starttls', updatedAt: '2024-06-01T00:00:00.000Z' });
    await store.update(changed);
    expect(await store.get('carol')).toEqual(changed);

    const err = await rejection(store.update(record('dave')));
    expect(err.code).toBe('ACCOUNT_NOT_FOUND');
    expect(err.status).toBe(404);
    expect(await redis.hexists(keys.accounts(), 'dave')).toBe(0);
  });

  it('updateIf writes only over the record it was given: a change made meanwhile is kept, a deleted one stays gone', async () => {
    await store.create(record('cas'));
    const read = (await store.get('cas'))!;
    expect(await store.updateIf(read, { ...read, name: 'rotated' })).toBe(true);
    expect((await store.get('cas'))?.name).toBe('rotated');
    // A client changed it after `read` was taken: the stale compare-and-set must not undo that change.
    await store.update({ ...read, host: 'client.example.org' });
    expect(await store.updateIf(read, { ...read, name: 'stale' })).toBe(false);
    expect(await store.get('cas')).toMatchObject({ host: 'client.example.org', name: read.name });
    await store.delete('cas');
    expect(await store.updateIf(read, read)).toBe(false);
    expect(await store.get('cas')).toBeNull();
  });

  it('an update after a delete does not bring the account back', async () => {
    await store.create(record('erin'));
    expect(await store.delete('erin')).toBe(true);
    expect((await rejection(store.update(record('erin')))).code).toBe('ACCOUNT_NOT_FOUND');
    expect(await store.get('erin')).toBeNull();
  });

  it('delete reports whether it removed something', async () => {
    await store.create(record('frank'));
    await store.create(record('gina'));
    expect(await store.delete('frank')).toBe(true);
    expect(await store.delete('frank')).toBe(false);
    expect((await store.list()).map((r) => r.id)).toEqual(['gina']);
  });

  it('ping succeeds while Redis is up', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });

  it('a corrupted record is SERVICE_UNAVAILABLE (503) for get and list, never null or a shorter list', async () => {
    await store.create(record('good'));
    await redis.hset(keys.accounts(), 'bad', '{"id":"bad","protocol":"imap","sealedSecret":"v1.secret');
    const err = await rejection(store.get('bad'));
    expect(err.code).toBe('SERVICE_UNAVAILABLE');
    expect(err.status).toBe(503);
    expect(err.message).toContain('"bad"');
    expect(err.message).not.toContain('v1.secret');
    expect((await rejection(store.list())).code).toBe('SERVICE_UNAVAILABLE');
    // Other records stay readable one by one.
    expect((await store.get('good'))?.id).toBe('good');
  });

  it('valid JSON of the wrong shape, or filed under another id, is 503 too', async () => {
    await redis.hset(keys.accounts(), 'shape', JSON.stringify({ ...record('shape'), port: '993' }));
    expect((await rejection(store.get('shape'))).code).toBe('SERVICE_UNAVAILABLE');
    await redis.hset(keys.accounts(), 'elsewhere', JSON.stringify(record('someone-else')));
    expect((await rejection(store.get('elsewhere'))).code).toBe('SERVICE_UNAVAILABLE');
  });

  it('a wrong-typed accounts key is 503, not an empty store', async () => {
    await redis.set(keys.accounts(), 'not a hash');
    expect((await rejection(store.get('alice'))).code).toBe('SERVICE_UNAVAILABLE');
    expect((await rejection(store.list())).code).toBe('SERVICE_UNAVAILABLE');
    expect((await rejection(store.create(record('alice')))).code).toBe('SERVICE_UNAVAILABLE');
  });

  it('close() leaves a shared client open unless told to quit it', async () => {
    await new RedisAccountStore(redis).close();
    expect(await redis.ping()).toBe('PONG');

    const own = client(server.url);
    await own.ping();
    await new RedisAccountStore(own, { closeClient: true }).close();
    await expect.poll(() => own.status).toBe('end');
  });

  // Last in this block: it takes Redis down and brings it back empty.
  it('with Redis down, get/list/create/ping reject with 503 instead of answering, and recover after', async () => {
    await store.create(record('alice'));
    await server.kill();

    const err = await rejection(store.get('alice'));
    expect(err.code).toBe('SERVICE_UNAVAILABLE');
    expect(err.status).toBe(503);
    expect((await rejection(store.get('nobody'))).code).toBe('SERVICE_UNAVAILABLE');
    expect((await rejection(store.list())).code).toBe('SERVICE_UNAVAILABLE');
    expect((await rejection(store.create(record('bob')))).code).toBe('SERVICE_UNAVAILABLE');
    await expect(store.ping()).rejects.toBeInstanceOf(GatewayError);

    await server.restart();
    await expect.poll(() => store.ping().then(() => 'up', () => 'down'), { timeout: 10_000 }).toBe('up');
    await store.create(record('bob'));
    expect((await store.get('bob'))?.id).toBe('bob');
  });

  it('bounds an operation in time even when the client would queue and retry for long', async () => {
    // ioredis defaults: offline queue on, 20 retries per request. Without the store's bound a request
    // during an outage would hang for many seconds.
    const patient = new Redis(server.url, { maxRetriesPerRequest: 20 });
    patient.on('error', () => undefined);
    try {
      const bounded = new RedisAccountStore(patient, { operationTimeoutMs: 300 });
      await bounded.ping();
      await server.kill();
      const started = Date.now();
      const err = await rejection(bounded.get('alice'));
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      patient.disconnect();
      await server.restart();
    }
  });
});

describe('RedisAccountStore (Redis Cluster)', () => {
  let cluster: RedisCluster;
  let redis: Cluster;
  let store: RedisAccountStore;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    redis = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
    redis.on('error', () => undefined);
    store = new RedisAccountStore(redis);
  });
  afterAll(async () => {
    redis?.disconnect();
    await cluster?.stop();
  });

  it('creates, updates (script), lists and deletes on a cluster', async () => {
    await store.create(record('alice'));
    await store.create(record('bob'));
    expect((await rejection(store.create(record('alice')))).code).toBe('ACCOUNT_EXISTS');
    await store.update(record('alice', { port: 143, security: 'starttls' }));
    expect((await rejection(store.update(record('carol')))).code).toBe('ACCOUNT_NOT_FOUND');
    expect((await store.list()).map((r) => [r.id, r.port])).toEqual([
      ['alice', 143],
      ['bob', 993],
    ]);
    expect(await store.delete('bob')).toBe(true);
    await store.ping();
    expect((await store.list()).map((r) => r.id)).toEqual(['alice']);
  });
});
