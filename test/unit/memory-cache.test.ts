import { describe, expect, it } from 'vitest';
import { MemoryCache } from '../../src/cache/memory-cache.js';

const kib = (n: number): Buffer => Buffer.alloc(n * 1024, 1);

describe('MemoryCache', () => {
  it('stays within its byte budget by evicting the least recently used entries', async () => {
    let now = 0;
    const cache = new MemoryCache(10 * 1024, () => now);
    for (const key of ['a', 'b', 'c', 'd']) {
      await cache.set(key, kib(2), 60);
      now += 2000;
    }
    expect(await cache.get('a')).not.toBeNull(); // a is now the most recently used
    now += 2000;
    await cache.set('e', kib(3), 60);
    expect(cache.sizeBytes).toBeLessThanOrEqual(10 * 1024);
    expect(await cache.get('b')).toBeNull();
    expect(await cache.get('a')).not.toBeNull();
    expect(await cache.get('e')).not.toBeNull();
  });

  it('orders by use to within a second: a read soon after the last move keeps the entry in place', async () => {
    let now = 0;
    const cache = new MemoryCache(6 * 1024, () => now);
    await cache.set('old', kib(2), 60);
    now += 100;
    await cache.set('new', kib(2), 60);
    now += 100;
    await cache.get('old'); // 200 ms after it was stored: not moved
    await cache.set('third', kib(3), 60);
    expect(await cache.get('old')).toBeNull();
    expect(await cache.get('new')).not.toBeNull();
  });

  it('answers a miss once an entry has expired', async () => {
    let now = 0;
    const cache = new MemoryCache(1024 * 1024, () => now);
    await cache.set('k', Buffer.from('v'), 5);
    now += 4999;
    expect((await cache.get('k'))?.toString()).toBe('v');
    now += 1;
    expect(await cache.get('k')).toBeNull();
    expect(cache.sizeBytes).toBe(0);
  });

  it('drops every key under a prefix, and nothing else', async () => {
    const cache = new MemoryCache(1024 * 1024);
    await cache.set('acct:{a}:1', Buffer.from('1'), 60);
    await cache.set('acct:{a}:2', Buffer.from('2'), 60);
    await cache.set('acct:{ab}:1', Buffer.from('3'), 60);
    await cache.deletePrefix('acct:{a}:');
    expect(await cache.get('acct:{a}:1')).toBeNull();
    expect(await cache.get('acct:{a}:2')).toBeNull();
    expect((await cache.get('acct:{ab}:1'))?.toString()).toBe('3');
  });

  it('does not keep a value larger than the whole budget', async () => {
    const cache = new MemoryCache(1024);
    await cache.set('big', kib(2), 60);
    expect(await cache.get('big')).toBeNull();
    expect(cache.sizeBytes).toBe(0);
  });
});
