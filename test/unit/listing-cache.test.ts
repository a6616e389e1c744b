import { describe, expect, it } from 'vitest';
import { MemoryCache } from '../../src/cache/memory-cache.js';
import { compilePageEncoder } from '../../src/http/schemas/page-encoder.js';
import { ListingCache } from '../../src/mail/imap/listing-cache.js';
import type { MessagePage } from '../../src/mail/types.js';

const page: MessagePage = {
  messages: [
    {
      id: 'AQAAAAEAAAAB',
      uid: 1,
      messageId: '<a@example.com>',
      subject: 'Grüße',
      from: [{ name: 'Zoë', address: 'zoe@example.com' }],
      to: [],
      cc: [],
      date: '2024-05-01T10:00:00.000Z',
      receivedAt: null,
      size: 42,
      flags: ['\\Seen'],
      seen: true,
      flagged: false,
      hasAttachments: false,
      preview: null,
    },
  ],
  nextCursor: null,
  total: 1,
  state: 'aTEuMS4yLjEuNQ',
};

function setup() {
  const shared = new MemoryCache(1024 * 1024);
  const local = new MemoryCache(1024 * 1024);
  const encoder = compilePageEncoder();
  const cache = new ListingCache({ cache: shared, local, ttlSeconds: 3600, encodePage: encoder.encode, layout: encoder.layout });
  const key = cache.key('acct', 'INBOX', { limit: 50, cursor: undefined });
  return { shared, local, cache, key };
}

describe('ListingCache', () => {
  it('answers a stored page as the state and the JSON bytes, from the shared cache and then its own copy', async () => {
    const { shared, local, cache, key } = setup();
    const stored = await cache.set('acct', key, page, cache.generation('acct'));
    expect(stored.state).toBe(page.state);
    expect(JSON.parse(stored.json.toString('utf8'))).toEqual(page);
    await local.delete([key]);
    const fromShared = await cache.get('acct', key);
    expect(fromShared?.json.equals(stored.json)).toBe(true);
    await shared.delete([key]);
    const fromLocal = await cache.get('acct', key);
    expect(fromLocal?.state).toBe(page.state);
    expect(fromLocal?.json.equals(stored.json)).toBe(true);
  });

  it('drops an entry it cannot read, and misses', async () => {
    const { shared, cache, key } = setup();
    await shared.set(key, Buffer.from('{"state":"old layout"}'), 60);
    expect(await cache.get('acct', key)).toBeNull();
    expect(await shared.get(key)).toBeNull();
  });

  it('keeps no copy of a page read or built while the account was being forgotten', async () => {
    const { shared, local, cache, key } = setup();
    const before = cache.generation('acct');
    await cache.forgetAccount('acct');
    const built = await cache.set('acct', key, page, before); // built from the old account
    expect(built.state).toBe(page.state); // still answered to its caller
    expect(await shared.get(key)).toBeNull();
    expect(await local.get(key)).toBeNull();

    // A read from the shared cache that a forget overtakes leaves no local copy either.
    await cache.set('acct', key, page, cache.generation('acct'));
    await local.delete([key]);
    const sharedGet = shared.get.bind(shared);
    shared.get = async (k: string) => {
      const value = await sharedGet(k);
      await cache.forgetAccount('acct');
      return value;
    };
    expect(await cache.get('acct', key)).not.toBeNull();
    expect(await local.get(key)).toBeNull();
  });

  it('puts the JSON layout in the key, so another layout never reads these entries', () => {
    const { cache } = setup();
    const other = new ListingCache({ cache: new MemoryCache(1024), ttlSeconds: 60, encodePage: JSON.stringify, layout: 'other' });
    const query = { limit: 50, cursor: undefined };
    expect(cache.key('acct', 'INBOX', query)).not.toBe(other.key('acct', 'INBOX', query));
    expect(cache.key('acct', 'INBOX', query)).toBe(cache.key('acct', 'INBOX', { ...query }));
    expect(cache.key('acct', 'INBOX', query)).not.toBe(cache.key('acct', 'INBOX', { limit: 20, cursor: undefined }));
  });
});
