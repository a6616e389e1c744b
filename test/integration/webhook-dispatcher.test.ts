/**
 * The webhook dispatcher on both queue backends (the event log under a data directory with file
 * lanes; Redis Streams with consumer groups), delivering to real HTTP receivers on loopback: order
 * per account, a failing receiver holding back only its account, filters, a 410, and an event that
 * was handed out but never settled (a process died mid-delivery) being sent again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/cache/keys.js';
import { connectRedis, createRedisClient, type RedisClient } from '../../src/cache/redis-connection.js';
import { LocalWatchLeases, RedisWatchLeases, type WatchLeases } from '../../src/coordination/watch-leases.js';
import { compareEventIds } from '../../src/events/log/event-id.js';
import { FileEventLog } from '../../src/events/log/file-event-log.js';
import { RedisEventLog } from '../../src/events/log/redis-event-log.js';
import type { EventLog } from '../../src/events/types.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { WebhookDispatcher } from '../../src/webhooks/dispatcher.js';
import { FileDeliveryLanes } from '../../src/webhooks/file-lanes.js';
import { laneStartId, type DeliveryLanes } from '../../src/webhooks/lanes.js';
import { RedisDeliveryLanes } from '../../src/webhooks/redis-lanes.js';
import { newWebhookSecret } from '../../src/webhooks/signing.js';
import type { DeliveryRecord, DeliveryWebhook, WebhookDirectory } from '../../src/webhooks/webhook-directory.js';
import { newEvent } from '../support/event-log-contract.js';
import { RecordingDemand } from '../support/memory-event-log.js';
import { startRedisCluster, type RedisCluster } from '../support/redis.js';
import { testServers } from '../support/servers.js';
import { closeReceivers, receiver, type Received } from '../support/webhook-receiver.js';

const DAY_MS = 86_400_000;
const logger = pino({ level: 'silent' });
const egress = createEgressPolicy(['127.0.0.1/32']);

/** The webhooks as a store would hand them over, kept in a map the test edits. */
class Directory implements WebhookDirectory {
  readonly hooks = new Map<string, DeliveryWebhook & { enabled: boolean; disabledReason?: string }>();
  readonly records = new Map<string, DeliveryRecord[]>();

  add(url: string, fields: Partial<DeliveryWebhook> = {}): DeliveryWebhook {
    const hook = { id: `wh_${randomUUID()}`, url, events: null, accounts: null, createdAtMs: Date.now() - 1, secret: newWebhookSecret(), enabled: true, ...fields };
    this.hooks.set(hook.id, hook);
    return hook;
  }
  async enabled(): Promise<DeliveryWebhook[]> {
    return [...this.hooks.values()].filter((hook) => hook.enabled);
  }
  async get(id: string): Promise<DeliveryWebhook | null> {
    return this.hooks.get(id) ?? null;
  }
  async disable(id: string, reason: string): Promise<void> {
    const hook = this.hooks.get(id);
    if (hook) Object.assign(hook, { enabled: false, disabledReason: reason });
  }
  async version(): Promise<number> {
    return 0;
  }
  async record(webhookId: string, record: DeliveryRecord): Promise<void> {
    const list = this.records.get(webhookId) ?? [];
    list.unshift(record);
    this.records.set(webhookId, list);
  }
}

interface Backend {
  name: string;
  /** Seconds its setup may take (a Cluster starts six servers). */
  setupTimeoutMs?: number;
  setup(): Promise<{
    log: EventLog;
    lanes: () => Promise<DeliveryLanes>;
    leases: () => WatchLeases;
    /** The Redis client the lanes use (Redis backends): leases shared between processes, keys to look at. */
    redis?: RedisClient;
    cleanup(): Promise<void>;
  }>;
}

/** Leases whose store this process can be cut off from (a network partition: renewals fail, others go on). */
class PartitionedLeases implements WatchLeases {
  cut = false;
  constructor(private readonly inner: WatchLeases) {}
  get renewIntervalMs(): number {
    return this.inner.renewIntervalMs;
  }
  get ttlMs(): number {
    return this.inner.ttlMs;
  }
  private check(): void {
    if (this.cut) throw new Error('connect ETIMEDOUT');
  }
  async tryAcquire(accountId: string): Promise<boolean> {
    this.check();
    return this.inner.tryAcquire(accountId);
  }
  async renew(accountId: string): Promise<boolean> {
    this.check();
    return this.inner.renew(accountId);
  }
  async release(accountId: string): Promise<void> {
    this.check();
    return this.inner.release(accountId);
  }
  want(accountId: string): Promise<void> {
    return this.inner.want(accountId);
  }
  wanted(accountId: string): Promise<boolean> {
    return this.inner.wanted(accountId);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const { redisUrl } = testServers();
let redis: Redis;
beforeAll(() => {
  redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
});
afterAll(() => redis?.disconnect());

const backends: Backend[] = [
  {
    name: 'files under the data directory',
    async setup() {
      const dir = await mkdtemp(path.join(tmpdir(), 'mailgw-webhooks-'));
      const log = new FileEventLog({ dataDir: dir, retentionMs: DAY_MS });
      return {
        log,
        lanes: () => FileDeliveryLanes.open(dir, log),
        leases: () => new LocalWatchLeases(),
        cleanup: async () => {
          await log.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'Redis Streams consumer groups',
    async setup() {
      const log = new RedisEventLog(redis, { retentionMs: DAY_MS });
      return {
        log,
        lanes: async () => new RedisDeliveryLanes(redis),
        leases: () => new RedisWatchLeases(redis, logger, 3_000, keys.deliveryLease),
        redis,
        cleanup: () => log.close(),
      };
    },
  },
  {
    name: 'a Redis Cluster (consumer groups, every command in one account\'s slot)',
    setupTimeoutMs: 120_000,
    async setup() {
      const cluster: RedisCluster = await startRedisCluster();
      const client: RedisClient = createRedisClient({ url: undefined, clusterNodes: cluster.nodes.map((n) => `${n.host}:${n.port}`) });
      client.on('error', () => undefined);
      if (!(await connectRedis(client, 10_000))) throw new Error('the Redis Cluster did not answer');
      const log = new RedisEventLog(client, { retentionMs: DAY_MS });
      return {
        log,
        lanes: async () => new RedisDeliveryLanes(client),
        leases: () => new RedisWatchLeases(client, logger, 3_000, keys.deliveryLease),
        redis: client,
        cleanup: async () => {
          await log.close();
          client.disconnect();
          await cluster.stop();
        },
      };
    },
  },
];

afterEach(closeReceivers);

for (const backend of backends) {
  describe(`webhook dispatcher on ${backend.name}`, () => {
    let env: Awaited<ReturnType<Backend['setup']>>;
    const dispatchers: WebhookDispatcher[] = [];
    beforeAll(async () => {
      env = await backend.setup();
    }, backend.setupTimeoutMs ?? 10_000);
    afterEach(async () => {
      await Promise.all(dispatchers.splice(0).map((d) => d.close()));
    });
    afterAll(() => env?.cleanup());

    async function start(
      directory: Directory,
      accounts: string[],
      options: { leases?: WatchLeases; record?: (id: string, record: DeliveryRecord) => Promise<void> } = {},
    ): Promise<WebhookDispatcher> {
      const dispatcher = new WebhookDispatcher({
        directory,
        accountIds: async () => accounts,
        log: env.log,
        lanes: await env.lanes(),
        leases: options.leases ?? env.leases(),
        demand: new RecordingDemand(),
        record: options.record ?? ((id, record) => directory.record(id, record)),
        egress,
        retryHours: 24,
        refreshIntervalMs: 60_000,
        pollIntervalMs: 60_000,
        logger,
      });
      dispatchers.push(dispatcher);
      await dispatcher.refresh();
      return dispatcher;
    }

    const bodies = (received: Received[]): Array<{ account: string; subject: unknown; id: string }> =>
      received.map((r) => JSON.parse(r.body) as { account: string; subject: unknown; id: string });

    it('delivers each account\'s events in order, signed; a failing receiver holds back only that account', async () => {
      const [slow, fast] = [`a-${randomUUID()}`, `b-${randomUUID()}`];
      let refusedOnce = false;
      const target = await receiver((_req, res, got) => {
        const event = JSON.parse(got.body) as { account: string };
        if (event.account === slow && !refusedOnce) {
          refusedOnce = true;
          return void res.writeHead(503).end('busy');
        }
        res.writeHead(204).end();
      });
      const directory = new Directory();
      const hook = directory.add(target.url);
      await start(directory, [slow, fast]);
      const stored = [
        ...(await env.log.append(slow, [newEvent('message.new', 'INBOX', { subject: 's1' }), newEvent('message.new', 'INBOX', { subject: 's2' })])),
        ...(await env.log.append(fast, [newEvent('message.new', 'INBOX', { subject: 'f1' }), newEvent('message.new', 'INBOX', { subject: 'f2' })])),
      ];

      // The fast account's two are delivered while the slow one's first waits for its retry (~5 s).
      await target.waitFor(3);
      const early = bodies(target.received);
      expect(early.filter((e) => e.account === fast).map((e) => e.subject)).toEqual(['f1', 'f2']);
      expect(early.filter((e) => e.account === slow).map((e) => e.subject)).toEqual(['s1']);

      await target.waitFor(5, 15_000);
      const slowOnes = bodies(target.received).filter((e) => e.account === slow);
      expect(slowOnes.map((e) => e.subject)).toEqual(['s1', 's1', 's2']);
      // The retry carries the same webhook-id (the event id) and a signature a receiver verifies.
      const verifier = new Webhook(hook.secret.slice('whsec_'.length));
      for (const got of target.received) {
        const verified = verifier.verify(got.body, got.headers as Record<string, string>) as { id: string };
        expect(got.headers['webhook-id']).toBe(verified.id);
      }
      expect(new Set(slowOnes.slice(0, 2).map((e) => e.id)).size).toBe(1);
      expect(stored.map((e) => e.id)).toEqual(expect.arrayContaining(bodies(target.received).map((e) => e.id)));

      const records = directory.records.get(hook.id) ?? [];
      // By outcome, not attempt number: a lane runner restarted under load before its retry state
      // landed counts again from 1 (at least once, never lost; lane-runner.ts).
      const firstTry = records.find((r) => r.eventId === slowOnes[0]!.id && r.status === 'retrying');
      expect(firstTry).toMatchObject({ attempt: 1, responseStatus: 503 });
      expect(Date.parse(firstTry!.nextAttemptAt!) - Date.parse(firstTry!.at)).toBeGreaterThanOrEqual(3_900);
      expect(records.find((r) => r.eventId === slowOnes[0]!.id && r.status === 'delivered')).toMatchObject({ responseStatus: 204 });
    }, 30_000);

    it('sends a webhook only the types and accounts it asked for', async () => {
      const [mine, other] = [`a-${randomUUID()}`, `b-${randomUUID()}`];
      const target = await receiver((_req, res) => res.writeHead(200).end());
      const directory = new Directory();
      directory.add(target.url, { events: new Set(['message.deleted']), accounts: new Set([mine]) });
      await start(directory, [mine, other]);
      await env.log.append(mine, [newEvent('message.new', 'INBOX'), newEvent('message.deleted', 'INBOX', { messageId: 'x1' })]);
      await env.log.append(other, [newEvent('message.deleted', 'INBOX', { messageId: 'y1' })]);
      await env.log.append(mine, [newEvent('message.new', 'INBOX'), newEvent('message.deleted', 'INBOX', { messageId: 'x2' })]);
      await target.waitFor(2);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(target.received.map((r) => JSON.parse(r.body) as { type: string; messageId: string }).map((e) => `${e.type} ${e.messageId}`)).toEqual([
        'message.deleted x1',
        'message.deleted x2',
      ]);
    });

    it('keeps the log order under a burst of appends', async () => {
      const accountId = `a-${randomUUID()}`;
      const target = await receiver((_req, res) => res.writeHead(200).end());
      const directory = new Directory();
      directory.add(target.url);
      await start(directory, [accountId]);
      const burst = Array.from({ length: 120 }, (_, n) => n);
      await Promise.all(burst.map((n) => env.log.append(accountId, [newEvent('message.new', 'INBOX', { n })])));
      await target.waitFor(burst.length);
      const ids = target.received.map((r) => r.headers['webhook-id'] as string);
      expect([...ids].sort(compareEventIds)).toEqual(ids);
      expect(new Set(target.received.map((r) => (JSON.parse(r.body) as { n: number }).n)).size).toBe(burst.length);
    });

    it('does not let a receiver that hangs hold up another webhook of the same account', async () => {
      const accountId = `a-${randomUUID()}`;
      const hanging = await receiver(() => undefined);
      const fast = await receiver((_req, res) => res.writeHead(200).end());
      const directory = new Directory();
      directory.add(hanging.url);
      directory.add(fast.url);
      await start(directory, [accountId]);
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 1 }), newEvent('message.new', 'INBOX', { n: 2 })]);
      await fast.waitFor(2, 3_000);
      expect(hanging.received).toHaveLength(1);
    });

    it('disables a webhook whose receiver answers 410, and resumes from the same event once it is enabled again', async () => {
      const accountId = `a-${randomUUID()}`;
      let answer = 410;
      const target = await receiver((_req, res) => res.writeHead(answer).end());
      const directory = new Directory();
      const hook = directory.add(target.url);
      const dispatcher = await start(directory, [accountId]);
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 1 }), newEvent('message.new', 'INBOX', { n: 2 })]);
      await target.waitFor(1);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(target.received).toHaveLength(1);
      expect(directory.hooks.get(hook.id)).toMatchObject({ enabled: false, disabledReason: expect.stringContaining('410') });
      expect(directory.records.get(hook.id)?.[0]).toMatchObject({ status: 'failed', responseStatus: 410 });

      answer = 200;
      directory.hooks.get(hook.id)!.enabled = true;
      await dispatcher.refresh();
      await target.waitFor(3);
      const ns = target.received.map((r) => (JSON.parse(r.body) as { n: number }).n);
      expect(ns).toEqual([1, 1, 2]);
      expect(target.received[0]!.headers['webhook-id']).toBe(target.received[1]!.headers['webhook-id']);
    });

    it('sends again an event that was handed out and never settled (a process died mid-delivery)', async () => {
      const accountId = `a-${randomUUID()}`;
      const target = await receiver((_req, res) => res.writeHead(200).end());
      const directory = new Directory();
      const hook = directory.add(target.url);
      const [first, second] = await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 1 }), newEvent('message.new', 'INBOX', { n: 2 })]);
      // What a process that died after taking the head did: read it from the queue, never settled it.
      const before = await env.lanes();
      const taken = await before.pending({ webhookId: hook.id, accountId }, laneStartId(hook.createdAtMs), 1);
      expect(taken.map((e) => e.id)).toEqual([first!.id]);

      await start(directory, [accountId]);
      await target.waitFor(2);
      expect(target.received.map((r) => r.headers['webhook-id'])).toEqual([first!.id, second!.id]);
      // Settled: a later process does not send them again.
      await expect
        .poll(async () => (await (await env.lanes()).pending({ webhookId: hook.id, accountId }, laneStartId(hook.createdAtMs), 10)).length, { timeout: 5_000 })
        .toBe(0);
    });

    it('keeps the retry count and the next attempt time across a restart', async () => {
      const accountId = `a-${randomUUID()}`;
      const target = await receiver((_req, res) => res.writeHead(500).end());
      const directory = new Directory();
      const hook = directory.add(target.url);
      const first = await start(directory, [accountId]);
      await env.log.append(accountId, [newEvent('message.new', 'INBOX')]);
      await target.waitFor(1);
      // The attempt is recorded after the answer arrives: wait for the record, not for a fixed time.
      await expect.poll(() => directory.records.get(hook.id)?.[0]).toMatchObject({ status: 'retrying', attempt: 1 });
      await first.close();
      const retrying = directory.records.get(hook.id)?.[0];

      // A restart within the back-off does not send at once, and the next attempt is the second.
      await start(directory, [accountId]);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(target.received).toHaveLength(1);
      await target.waitFor(2, 10_000);
      expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(retrying!.nextAttemptAt!) - 50);
      await expect.poll(() => directory.records.get(hook.id)?.[0]).toMatchObject({ status: 'retrying', attempt: 2 });
    }, 20_000);

    it('moves a lane forward only, and a late settle leaves the next head\'s retry state alone', async () => {
      const lanes = await env.lanes();
      const lane = { webhookId: `wh_${randomUUID()}`, accountId: `a-${randomUUID()}` };
      const startId = laneStartId(Date.now() - 60_000);
      const [a, b, c] = await env.log.append(lane.accountId, [newEvent('message.new', 'INBOX', { n: 1 }), newEvent('message.new', 'INBOX', { n: 2 }), newEvent('message.new', 'INBOX', { n: 3 })]);
      expect((await lanes.pending(lane, startId, 10)).map((e) => e.id)).toEqual([a!.id, b!.id, c!.id]);

      // The head after `a` failed and its back-off was stored before `a`'s settle landed.
      const now = Date.now();
      await lanes.saveRetryState(lane, { eventId: b!.id, attempts: 1, firstAttemptAtMs: now, nextAttemptAtMs: now + 5_000 });
      await lanes.settle(lane, [a!.id]);
      expect(await lanes.retryState(lane)).toMatchObject({ eventId: b!.id, attempts: 1 });
      await lanes.settle(lane, [b!.id, c!.id]);
      expect(await lanes.retryState(lane)).toBeNull();

      // A settle from a process that lost the lease, landing last, does not move the lane back: the
      // lane read again (in Redis after its group was lost, as with an expired stream) has nothing.
      await lanes.settle(lane, [a!.id]);
      if (env.redis) await env.redis.xgroup('DESTROY', keys.events(lane.accountId), `webhook:${lane.webhookId}`);
      expect(await (await env.lanes()).pending(lane, startId, 10)).toEqual([]);
    });

    it('fails the attempts of a webhook whose secret cannot sign, and goes on delivering the account to another', async () => {
      const accountId = `a-${randomUUID()}`;
      const broken = await receiver((_req, res) => res.writeHead(200).end());
      const fine = await receiver((_req, res) => res.writeHead(200).end());
      const directory = new Directory();
      const bad = directory.add(broken.url, { secret: 'not-a-webhook-secret' });
      directory.add(fine.url);
      await start(directory, [accountId]);
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 1 }), newEvent('message.new', 'INBOX', { n: 2 })]);
      await fine.waitFor(2);
      await expect.poll(() => directory.records.get(bad.id)?.[0]).toMatchObject({ status: 'retrying', error: expect.stringContaining('secret') });
      expect(broken.received).toHaveLength(0);
    });

    it('starts a lane again after a 410 whose disable could not be stored', async () => {
      const accountId = `a-${randomUUID()}`;
      let answer = 410;
      const target = await receiver((_req, res) => res.writeHead(answer).end());
      const directory = new Directory();
      directory.add(target.url);
      let disableFails = true;
      const disable = directory.disable.bind(directory);
      directory.disable = async (id, reason) => {
        if (disableFails) throw new Error('the webhook store is unavailable');
        return disable(id, reason);
      };
      const dispatcher = await start(directory, [accountId]);
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 1 }), newEvent('message.new', 'INBOX', { n: 2 })]);
      await target.waitFor(1);
      await sleep(300);
      expect(target.received).toHaveLength(1);

      // Still enabled (the disable was lost): the next refresh runs the lane again from the same event.
      answer = 200;
      disableFails = false;
      await dispatcher.refresh();
      await target.waitFor(3);
      expect(target.received.map((r) => (JSON.parse(r.body) as { n: number }).n)).toEqual([1, 1, 2]);
    });

    it('stops delivering once its lease cannot be renewed; another process takes over and the first one stays out', async (ctx) => {
      if (!env.redis) return ctx.skip(); // one process without Redis: its lease is never lost
      const accountId = `a-${randomUUID()}`;
      const target = await receiver((_req, res) => res.writeHead(200).end());
      const directory = new Directory();
      const hook = directory.add(target.url);
      const cutOff = new PartitionedLeases(env.leases());
      const byFirst: string[] = [];
      const bySecond: string[] = [];
      await start(directory, [accountId], {
        leases: cutOff,
        record: async (_id, record) => void byFirst.push(record.eventId),
      });
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 1 })]);
      await target.waitFor(1);

      // Cut off from the lease store for longer than the lease lasts: it must assume another process
      // has the account, and send nothing more, although it still reads the log.
      cutOff.cut = true;
      await sleep(3_200);
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 2 })]);
      await sleep(1_500);
      expect(target.received).toHaveLength(1);

      const second = await start(directory, [accountId], { record: async (_id, record) => void bySecond.push(record.eventId) });
      await expect.poll(() => second.delivering(), { timeout: 5_000 }).toEqual([accountId]);
      await target.waitFor(2);
      // Back in touch, the first learns its lease is gone and delivers nothing.
      cutOff.cut = false;
      await sleep(1_500);
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 3 })]);
      await target.waitFor(3);
      await sleep(500);
      expect(target.received.map((r) => (JSON.parse(r.body) as { n: number }).n)).toEqual([1, 2, 3]);
      expect(byFirst).toHaveLength(1);
      expect(bySecond).toHaveLength(2);
      expect(directory.hooks.get(hook.id)!.enabled).toBe(true);
    }, 20_000);

    it('makes no stream for an account without events, and leaves none of a deleted account\'s lane keys', async (ctx) => {
      if (!env.redis) return ctx.skip(); // the file lanes keep no per-account files
      const accountId = `a-${randomUUID()}`;
      const target = await receiver((_req, res) => res.writeHead(200).end());
      const directory = new Directory();
      directory.add(target.url);
      const dispatcher = await start(directory, [accountId]);
      await expect.poll(() => dispatcher.delivering()).toEqual([accountId]);
      await sleep(300);
      expect(await env.redis.exists(keys.events(accountId))).toBe(0);

      // Its first event makes the stream; the lane starts before it.
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 1 })]);
      await target.waitFor(1);
      const redisClient = env.redis;
      await expect.poll(() => redisClient.exists(keys.webhookLanes(accountId))).toBe(1);

      await dispatcher.forgetAccount(accountId);
      await env.log.dropAccount(accountId);
      await sleep(300);
      expect(await env.redis.exists(keys.events(accountId))).toBe(0);
      expect(await env.redis.exists(keys.webhookLanes(accountId))).toBe(0);
    });

    it('does not bring back a webhook deleted while a refresh was reading the webhooks', async () => {
      const accountId = `a-${randomUUID()}`;
      const target = await receiver((_req, res) => res.writeHead(200).end());
      const directory = new Directory();
      const hook = directory.add(target.url);
      const dispatcher = await start(directory, [accountId]);
      await env.log.append(accountId, [newEvent('message.new', 'INBOX', { n: 1 })]);
      await target.waitFor(1);

      // A refresh reads the webhook list (W still in it); W is deleted before that read answers. Each
      // later read is held too, so what the first one answered has time to act.
      const held: Array<() => void> = [];
      const enabled = directory.enabled.bind(directory);
      directory.enabled = async () => {
        const list = await enabled();
        await new Promise<void>((resolve) => held.push(resolve));
        return list;
      };
      const refreshing = dispatcher.refresh();
      await sleep(50);
      directory.hooks.delete(hook.id);
      // Its lanes stop at once; it then waits for the refresh under way, which must read again.
      const forgetting = dispatcher.forget(hook.id);
      await sleep(50);
      held.shift()!();
      await sleep(700);
      expect(target.received).toHaveLength(1);
      directory.enabled = enabled;
      for (const release of held.splice(0)) release();
      await Promise.all([refreshing, forgetting]);
      await sleep(300);
      expect(dispatcher.laneStats().has(hook.id)).toBe(false);
      expect(target.received).toHaveLength(1);
    });
  });
}
