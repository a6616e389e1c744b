/**
 * RedisEventLog against real Redis: the EventLog contract on the run's Redis and on a three-master
 * Cluster, and what only Redis has to get right: the key layout and its TTLs, hints between two
 * processes, a stream that expired or was evicted, a messages hash that was evicted, a mailbox larger
 * than one Lua call may unpack, and an outage.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/cache/keys.js';
import { connectRedis, createRedisClient, type RedisClient } from '../../src/cache/redis-connection.js';
import { compareEventIds } from '../../src/events/log/event-id.js';
import { RedisEventLog } from '../../src/events/log/redis-event-log.js';
import type { EventLog } from '../../src/events/types.js';
import { rejection } from '../support/assertions.js';
import { DAY_MS, eventLogContract, newEvent, state } from '../support/event-log-contract.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../support/redis.js';
import { testServers } from '../support/servers.js';

const { redisUrl } = testServers();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const account = (): string => `acct-${randomUUID()}`;

function client(url: string, connectionName?: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 100, ...(connectionName ? { connectionName } : {}) });
  redis.on('error', () => undefined);
  return redis;
}

describe('RedisEventLog on a single Redis: the EventLog contract', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = client(redisUrl);
  });
  afterAll(() => redis?.disconnect());
  // Redis ages entries by its own clock: retention tests wait for real (a few hundred ms).
  eventLogContract({
    make: async (options = {}) => new RedisEventLog(redis, { retentionMs: options.retentionMs ?? DAY_MS, now: options.now }),
    elapse: sleep,
  });
});

describe('RedisEventLog on a single Redis', () => {
  let redis: Redis;
  const logs: EventLog[] = [];
  const extra: Redis[] = [];
  const make = (on: RedisClient = redis, retentionMs = DAY_MS): RedisEventLog => {
    const log = new RedisEventLog(on, { retentionMs });
    logs.push(log);
    return log;
  };
  beforeAll(() => {
    redis = client(redisUrl);
  });
  afterEach(async () => {
    await Promise.all(logs.splice(0).map((log) => log.close()));
    for (const other of extra.splice(0)) other.disconnect();
  });
  afterAll(() => redis?.disconnect());

  it('keeps one stream per account, one field of event JSON per entry, and a TTL on every key', async () => {
    const log = make();
    const acct = account();
    const [event] = await log.append(acct, [newEvent('message.new', 'INBOX', { message: { id: 'x' } })], [
      { mailbox: 'INBOX', state: state(2, 1), replace: true, set: [['1', ['\\Seen']]] },
    ]);
    expect(await redis.type(keys.events(acct))).toBe('stream');
    const entries = await redis.xrange(keys.events(acct), '-', '+');
    expect(entries).toHaveLength(1);
    const [id, fields] = entries[0]!;
    expect(id).toBe(event!.id);
    expect(fields[0]).toBe('e');
    expect(JSON.parse(fields[1]!)).toEqual({ type: 'message.new', mailbox: 'INBOX', at: event!.at, message: { id: 'x' } });
    expect(await redis.hget(keys.watchMessages(acct, 'INBOX'), '1')).toBe('["\\\\Seen"]');

    const all = await redis.keys(`*{${acct}}*`);
    expect(all.sort()).toEqual(
      [keys.events(acct), keys.eventsMeta(acct), keys.watchStates(acct), keys.watchMessages(acct, 'INBOX')].sort(),
    );
    // Everything expires (Redis may run volatile-lru); the state outlives any gateway stop.
    const streamTtl = await redis.pttl(keys.events(acct));
    expect(streamTtl).toBeGreaterThan(DAY_MS);
    expect(streamTtl).toBeLessThanOrEqual(2 * DAY_MS);
    for (const key of [keys.watchStates(acct), keys.watchMessages(acct, 'INBOX')]) {
      expect(await redis.pttl(key)).toBeGreaterThan(29 * DAY_MS);
    }
    expect(await redis.pttl(keys.eventsMeta(acct))).toBeGreaterThan(streamTtl);
  });

  /** A writer, and a reader on a client of its own (as another process would be) listening to one account. */
  async function writerAndListeningReader(connectionName?: string): Promise<{ writer: RedisEventLog; reader: RedisEventLog; acct: string; hints: () => number }> {
    const otherClient = client(redisUrl, connectionName);
    extra.push(otherClient);
    const writer = make();
    const reader = make(otherClient);
    const acct = account();
    let hints = 0;
    reader.onAppend(acct, () => hints++);
    expect(await reader.listening()).toBe(true);
    return { writer, reader, acct, hints: () => hints };
  }

  it('hints another process that events were appended, and that process reads them', async () => {
    const { writer, reader, acct, hints } = await writerAndListeningReader();
    const [event] = await writer.append(acct, [newEvent('message.new', 'INBOX')]);
    await expect.poll(hints).toBeGreaterThanOrEqual(1);
    expect((await reader.readAfter(acct, '0-0', 10)).events).toEqual([event]);
  });

  it('has its listeners read again when its subscriber connection comes back, since hints sent meanwhile are lost', async () => {
    const name = `reader-${randomUUID()}`;
    const { writer, reader, acct, hints } = await writerAndListeningReader(name);
    // The reader's subscriber (a duplicate of its client, under the same name) is cut, and an append
    // follows at once: its hint goes nowhere.
    const subscribers = String(await redis.call('CLIENT', 'LIST', 'TYPE', 'pubsub'))
      .split('\n')
      .filter((line) => line.includes(`name=${name} `))
      .map((line) => /\bid=(\d+)/.exec(line)?.[1]);
    expect(subscribers).toHaveLength(1);
    await redis.call('CLIENT', 'KILL', 'ID', subscribers[0]!);
    await writer.append(acct, [newEvent('message.new', 'INBOX')]);
    // Once the subscriber is back, every listener here is called, and reads what it missed.
    await expect.poll(hints, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
    expect((await reader.readAfter(acct, '0-0', 10)).events).toHaveLength(1);
  });

  it('after its stream expired or was evicted: a reader that had everything is not lost, one behind is, and ids go on', async () => {
    const log = make();
    const acct = account();
    const [a, b] = await log.append(acct, [newEvent('message.new', 'INBOX'), newEvent('message.new', 'INBOX')]);
    await redis.del(keys.events(acct));
    expect(await log.readAfter(acct, b!.id, 10)).toEqual({ events: [], lost: false });
    expect(await log.readAfter(acct, a!.id, 10)).toEqual({ events: [], lost: true });
    expect(await log.latestId(acct)).toBe(b!.id);

    const [c] = await log.append(acct, [newEvent('message.new', 'INBOX')]);
    expect(compareEventIds(c!.id, b!.id)).toBeGreaterThan(0);
    expect(await log.readAfter(acct, b!.id, 10)).toEqual({ events: [c], lost: false });
    expect(await log.readAfter(acct, a!.id, 10)).toEqual({ events: [c], lost: true });
  });

  it('issues ids above the last one even when the Redis clock is now behind it', async () => {
    const log = make();
    const acct = account();
    await log.append(acct, [newEvent('message.new', 'INBOX')]);
    // As if the stream had expired after a Redis whose clock ran ahead issued this id.
    await redis.hset(keys.eventsMeta(acct), 'last', '99999999999999-5');
    await redis.del(keys.events(acct));
    const ids = (await log.append(acct, [newEvent('message.new', 'INBOX'), newEvent('message.new', 'INBOX')])).map((e) => e.id);
    ids.push(...(await log.append(acct, [newEvent('message.new', 'INBOX')])).map((e) => e.id));
    expect(ids).toEqual(['99999999999999-6', '99999999999999-7', '99999999999999-8']);
  });

  it('leaves out a mailbox whose messages were evicted, so its watcher looks at it afresh', async () => {
    const log = make();
    const acct = account();
    await log.append(acct, [], [
      { mailbox: 'INBOX', state: state(3, 2), replace: true, set: [['1', []], ['2', []]] },
      { mailbox: 'Empty', state: state(1, 0), replace: true },
    ]);
    await redis.del(keys.watchMessages(acct, 'INBOX'));
    // An empty mailbox is still known: its hash holds the presence marker.
    expect(await log.loadStates(acct)).toEqual(new Map([['Empty', state(1, 0)]]));
    expect(await log.loadMessages(acct, 'Empty')).toEqual(new Map());
  });

  it('stores a first look at a large mailbox in one append, and large and small changes of it in place', async () => {
    const log = make();
    const acct = account();
    const count = 12_000;
    const set: Array<[string, string[]]> = Array.from({ length: count }, (_, i) => [String(i + 1), i % 2 === 0 ? ['\\Seen'] : []]);
    await log.append(acct, [], [{ mailbox: 'INBOX', state: state(count + 1, count), replace: true, set }]);
    // Many flags at once (more arguments than one Lua call may unpack: 8,000), then one.
    const many: Array<[string, string[]]> = Array.from({ length: 4_500 }, (_, i) => [String(i + 1), ['\\Answered']]);
    await log.append(acct, [newEvent('message.updated', 'INBOX')], [{ mailbox: 'INBOX', state: state(count + 1, count), set: many }]);
    await log.append(acct, [newEvent('message.updated', 'INBOX')], [
      { mailbox: 'INBOX', state: state(count + 1, count - 1), set: [['2', ['\\Flagged']]], remove: ['3'] },
    ]);
    const messages = await log.loadMessages(acct, 'INBOX');
    expect(messages.size).toBe(count - 1);
    expect(messages.get('1')).toEqual(['\\Answered']);
    expect(messages.get('2')).toEqual(['\\Flagged']);
    expect(messages.has('3')).toBe(false);
    expect(messages.get('4501')).toEqual(['\\Seen']);
    expect(messages.get(String(count))).toEqual([]);
    // Written in parts and renamed into place: nothing is left beside the live keys.
    expect((await redis.keys(`*{${acct}}*`)).sort()).toEqual(
      [keys.events(acct), keys.eventsMeta(acct), keys.watchStates(acct), keys.watchMessages(acct, 'INBOX')].sort(),
    );

    // A new first look (UIDVALIDITY changed) replaces every message.
    await log.append(acct, [], [{ mailbox: 'INBOX', state: state(3_001, 3_000, '8'), replace: true, set: set.slice(0, 3_000) }]);
    const again = await log.loadMessages(acct, 'INBOX');
    expect(again.size).toBe(3_000);
    expect(again.get('1')).toEqual(['\\Seen']);
  });

  it("keeps the state of a quiet mailbox alive while the account's other mailboxes change", async () => {
    // A short state TTL (3 s; refreshed every second here) instead of 30 days.
    const log = new RedisEventLog(redis, { retentionMs: DAY_MS, stateTtlMs: 3_000 });
    logs.push(log);
    const acct = account();
    await log.append(acct, [], [
      { mailbox: 'INBOX', state: state(2, 1), replace: true, set: [['1', []]] },
      { mailbox: 'Archive', state: state(2, 1), replace: true, set: [['1', ['\\Seen']]] },
    ]);
    for (let i = 0; i < 8; i++) {
      await sleep(500);
      await log.append(acct, [newEvent('message.updated', 'INBOX')], [{ mailbox: 'INBOX', state: state(2, 1), set: [['1', [`$k${i}`]]] }]);
    }
    expect([...(await log.loadStates(acct)).keys()].sort()).toEqual(['Archive', 'INBOX']);
    expect(await log.loadMessages(acct, 'Archive')).toEqual(new Map([['1', ['\\Seen']]]));
  });

  it('drops every key of an account', async () => {
    const log = make();
    const acct = account();
    await log.append(acct, [newEvent('message.new', 'INBOX')], [
      { mailbox: 'INBOX', state: state(2, 1), replace: true, set: [['1', []]] },
      { mailbox: 'Sent', state: state(2, 1), replace: true, set: [['1', []]] },
    ]);
    await log.dropAccount(acct);
    expect(await redis.keys(`*{${acct}}*`)).toEqual([]);
  });
});

describe('RedisEventLog during a Redis outage', () => {
  let server: RedisServer;
  let redis: RedisClient;
  let log: RedisEventLog;
  beforeAll(async () => {
    server = await startRedis();
    // The production connection settings: no offline queue, so an outage fails at once.
    redis = createRedisClient({ url: server.url, clusterNodes: [] });
    redis.on('error', () => undefined);
    expect(await connectRedis(redis, 5_000)).toBe(true);
    log = new RedisEventLog(redis, { retentionMs: DAY_MS, operationTimeoutMs: 2_000 });
  });
  afterAll(async () => {
    await log?.close();
    redis?.disconnect();
    await server?.stop();
  });

  it('refuses appends and reads with 503 SERVICE_UNAVAILABLE, and works again when Redis is back', async () => {
    const acct = account();
    await log.append(acct, [newEvent('message.new', 'INBOX')]);
    await server.kill();
    for (const attempt of [
      log.append(acct, [newEvent('message.new', 'INBOX')]),
      log.readAfter(acct, '0-0', 10),
      log.latestId(acct),
      log.loadStates(acct),
      log.loadMessages(acct, 'INBOX'),
    ]) {
      const err = await rejection(attempt);
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
      expect(err.status).toBe(503);
    }
    await server.restart();
    // The restarted Redis is empty (no persistence in tests); the log just goes on.
    await expect.poll(async () => (await log.append(acct, [newEvent('message.new', 'INBOX')]).catch(() => [])).length, { timeout: 10_000 }).toBe(1);
    expect((await log.readAfter(acct, '0-0', 10)).events).toHaveLength(1);
  });
});

describe('RedisEventLog on a Redis Cluster', () => {
  let cluster: RedisCluster;
  const clients: RedisClient[] = [];
  const connect = async (): Promise<RedisClient> => {
    const redis = createRedisClient({ url: undefined, clusterNodes: cluster.nodes.map((n) => `${n.host}:${n.port}`) });
    redis.on('error', () => undefined);
    clients.push(redis);
    expect(await connectRedis(redis, 10_000)).toBe(true);
    return redis;
  };
  let shared: RedisClient;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    shared = await connect();
  }, 120_000);
  afterAll(async () => {
    for (const redis of clients) redis.disconnect();
    await cluster?.stop();
  });

  eventLogContract({
    make: async (options = {}) => new RedisEventLog(shared, { retentionMs: options.retentionMs ?? DAY_MS, now: options.now }),
    elapse: sleep,
  });

  it('hints another process on the Cluster, whichever node holds the account', async () => {
    const writer = new RedisEventLog(shared, { retentionMs: DAY_MS });
    const reader = new RedisEventLog(await connect(), { retentionMs: DAY_MS });
    try {
      const accounts = Array.from({ length: 6 }, account);
      const hinted = new Set<string>();
      for (const acct of accounts) reader.onAppend(acct, () => hinted.add(acct));
      expect(await reader.listening()).toBe(true);
      for (const acct of accounts) await writer.append(acct, [newEvent('message.new', 'INBOX')]);
      await expect.poll(() => hinted.size).toBe(accounts.length);
    } finally {
      await writer.close();
      await reader.close();
    }
  });
});
