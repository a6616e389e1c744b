/**
 * The batched rate-limit store against a real Redis: a burst costs a few round trips, not one per
 * request, and every request is in Redis's count once the interval has passed.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchedRedisStore } from '../../src/tenants/batched-redis-store.js';
import { testServers } from '../support/servers.js';

const { redisUrl } = testServers();

describe('BatchedRedisStore', () => {
  let redis: Redis;
  const prefix = `mailgw-test:${randomBytes(4).toString('hex')}:`;
  beforeAll(() => {
    redis = new Redis(redisUrl);
  });
  afterAll(async () => {
    const stale = await redis.keys(`${prefix}*`);
    if (stale.length > 0) await redis.del(...stale);
    redis.disconnect();
  });

  const incr = (store: BatchedRedisStore, key: string) =>
    new Promise<{ current: number; ttl: number }>((resolve, reject) =>
      store.incr(key, (err, result) => (err || !result ? reject(err ?? new Error('no result')) : resolve(result)), 60_000),
    );

  it('counts a burst of 200 requests with a few Redis calls, exactly, and keeps the window in Redis', async () => {
    const store = new BatchedRedisStore(redis, prefix, 50);
    let calls = 0;
    const evalBefore = redis.eval.bind(redis);
    (redis as unknown as { eval: typeof redis.eval }).eval = ((...args: Parameters<typeof redis.eval>) => {
      calls += 1;
      return evalBefore(...args);
    }) as typeof redis.eval;
    const results = await Promise.all(Array.from({ length: 200 }, () => incr(store, 'burst')));
    expect(Math.max(...results.map((r) => r.current))).toBe(200);
    expect(results.every((r) => r.ttl > 0 && r.ttl <= 60_000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(Number(await redis.get(`${prefix}burst`))).toBe(200);
    expect(await redis.pttl(`${prefix}burst`)).toBeGreaterThan(59_000);
    expect(calls).toBeLessThanOrEqual(3);
  });

  it('sees the counts of another process once it has not heard from Redis for an interval', async () => {
    const one = new BatchedRedisStore(redis, prefix, 50);
    const two = new BatchedRedisStore(redis, prefix, 50);
    expect((await incr(one, 'shared')).current).toBe(1);
    expect((await incr(two, 'shared')).current).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect((await incr(one, 'shared')).current).toBe(3);
  });

  it('answers the per-request path with a value, not a promise, unless it asks Redis', async () => {
    const store = new BatchedRedisStore(redis, prefix, 50);
    const first = store.hit('sync', 60_000);
    expect(first).toBeInstanceOf(Promise); // not heard of: Redis is asked, and answers every process's count
    expect((await first).current).toBe(1);
    const next = store.hit('sync', 60_000);
    expect(next).not.toBeInstanceOf(Promise);
    expect(next).toMatchObject({ current: 2 });
    expect(store.peek('sync')).toMatchObject({ current: 2 });
    expect(store.peek('never')).toEqual({ current: 0, ttl: 0 });
  });

  it('counts in the process alone, always synchronously, without Redis (the embedded mode)', () => {
    const store = new BatchedRedisStore(undefined, prefix, 50);
    for (let i = 1; i <= 5; i++) expect(store.hit('local', 60_000)).toMatchObject({ current: i });
    const counted = store.hit('local', 60_000) as { current: number; ttl: number };
    expect(counted.ttl).toBeGreaterThan(59_000);
    expect(store.peek('local').current).toBe(6);
  });
});
