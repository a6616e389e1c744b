/**
 * RedisWebhookStore and RedisDeliveryRecords against a real redis-server of this file's own (the
 * webhook keys are fixed; other files must not see them): two processes' worth of clients, so that
 * what one writes the other sees, and concurrent writes from both lose nothing.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { keys } from '../../src/cache/keys.js';
import { RedisDeliveryRecords } from '../../src/webhooks/delivery-records.js';
import { RedisWebhookStore } from '../../src/webhooks/stores.js';
import { newWebhookId } from '../../src/webhooks/types.js';
import { rejection } from '../support/assertions.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { deliveryAttempt, webhookRecord } from '../support/webhook-records.js';

let server: RedisServer;
let one: Redis;
let other: Redis;

beforeAll(async () => {
  server = await startRedis();
  one = new Redis(server.url);
  other = new Redis(server.url);
});
afterAll(async () => {
  one?.disconnect();
  other?.disconnect();
  await server?.stop();
});
beforeEach(async () => {
  await one.flushall();
});

describe('RedisWebhookStore', () => {
  it("shows one process's writes to another, and moves the version they poll on every write", async () => {
    const writer = new RedisWebhookStore(one);
    const reader = new RedisWebhookStore(other);
    expect(await reader.version()).toBe(0);
    const record = webhookRecord({ accounts: ['alice'] });
    await writer.create(record);
    expect(await reader.get(record.id)).toEqual(record);
    expect(await reader.version()).toBe(1);

    await writer.update(record.id, (c) => ({ ...c, enabled: false }));
    expect((await reader.list()).map((r) => r.enabled)).toEqual([false]);
    expect(await reader.version()).toBe(2);

    // What changes nothing moves nothing: a reader re-reads only when there is something to read.
    expect(await writer.update('wh_nobody', (c) => ({ ...c, enabled: false }))).toBeNull();
    expect(await writer.delete('wh_nobody')).toBe(false);
    expect(await reader.version()).toBe(2);
    expect(await one.hexists(keys.webhooks(), 'wh_nobody')).toBe(0);

    expect(await writer.delete(record.id)).toBe(true);
    expect(await reader.get(record.id)).toBeNull();
    expect(await reader.version()).toBe(3);
    expect(await one.ttl(keys.webhooksVersion())).toBe(-1);
  });

  it('loses no update when two processes change one webhook at the same time', async () => {
    const stores = [new RedisWebhookStore(one), new RedisWebhookStore(other)];
    const record = webhookRecord({ accounts: [] });
    await stores[0]!.create(record);
    // Each update reads, changes and writes back; without compare-and-set most of these would be lost.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => stores[i % 2]!.update(record.id, (c) => ({ ...c, accounts: [...c.accounts, `a${i}`] }))),
    );
    const accounts = (await stores[1]!.get(record.id))?.accounts ?? [];
    expect([...accounts].sort()).toEqual(Array.from({ length: 20 }, (_, i) => `a${i}`).sort());
  });

  it('answers 503 SERVICE_UNAVAILABLE for a record it cannot read, never a wrong answer', async () => {
    await one.hset(keys.webhooks(), 'wh_broken', '{"id": "wh_broken"');
    expect((await rejection(new RedisWebhookStore(one).list())).code).toBe('SERVICE_UNAVAILABLE');
    await one.hset(keys.webhooks(), 'wh_broken', JSON.stringify({ id: 'wh_broken', url: 'https://1.1.1.1/' }));
    expect((await rejection(new RedisWebhookStore(one).get('wh_broken'))).code).toBe('SERVICE_UNAVAILABLE');
  });
});

describe('RedisDeliveryRecords', () => {
  it('keep the newest records per webhook, newest first, up to the bound, with a TTL', async () => {
    const records = new RedisDeliveryRecords(one, { kept: 5 });
    const a = newWebhookId();
    const b = newWebhookId();
    for (let i = 1; i <= 8; i++) await records.add(a, deliveryAttempt(`a${i}`));
    await records.add(b, deliveryAttempt('b1'));
    expect((await records.list(a, 100)).map((r) => r.eventId)).toEqual(['a8', 'a7', 'a6', 'a5', 'a4']);
    expect((await records.list(a, 2)).map((r) => r.eventId)).toEqual(['a8', 'a7']);
    expect(await new RedisDeliveryRecords(other, { kept: 5 }).list(b, 10)).toEqual([expect.objectContaining({ eventId: 'b1', status: 'delivered' })]);
    expect(await one.llen(keys.webhookDeliveries(a))).toBe(5);
    expect(await one.ttl(keys.webhookDeliveries(a))).toBeGreaterThan(86_400);

    await records.remove(a);
    expect(await records.list(a, 100)).toEqual([]);
    expect(await one.exists(keys.webhookDeliveries(a))).toBe(0);
    expect(await records.list(b, 100)).toHaveLength(1);
  });

  it('hold the bound under concurrent writers', async () => {
    const writers = [new RedisDeliveryRecords(one, { kept: 5 }), new RedisDeliveryRecords(other, { kept: 5 })];
    const id = newWebhookId();
    await Promise.all(Array.from({ length: 40 }, (_, i) => writers[i % 2]!.add(id, deliveryAttempt(`e${i}`))));
    expect(await one.llen(keys.webhookDeliveries(id))).toBe(5);
  });

  it('take only webhook ids', async () => {
    const records = new RedisDeliveryRecords(one);
    expect((await rejection(records.add('{other}', deliveryAttempt('e')))).code).toBe('WEBHOOK_NOT_FOUND');
    expect(await one.dbsize()).toBe(0);
  });
});
