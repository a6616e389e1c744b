/**
 * How soon a gateway process sees account changes made through another one (LastKnownAccountStore
 * over RedisAccountStore, against a real Redis): its own changes at once, another process's within
 * `freshForMs`, and a busy account read from Redis once per `freshForMs`, not once per request.
 */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LastKnownAccountStore } from '../../src/accounts/last-known-store.js';
import { RedisAccountStore } from '../../src/accounts/redis-store.js';
import { accountRecord } from '../support/account-records.js';
import { keys } from '../../src/cache/keys.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { randomBytes } from 'node:crypto';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';
import { imapConnectionsOf } from '../support/imap-client.js';
import { testServers } from '../support/servers.js';

const record = accountRecord;

/** Counts the HGETs this process sends (Redis's own per-command statistics). */
async function hgetCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  return Number(/cmdstat_hget:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

describe('account records across gateway processes', () => {
  let server: RedisServer;
  let redis: Redis;
  let otherProcess: RedisAccountStore;
  let clockMs: number;
  let store: LastKnownAccountStore;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
    otherProcess = new RedisAccountStore(new Redis(server.url), { closeClient: true });
  });
  afterAll(async () => {
    await otherProcess?.close();
    redis?.disconnect();
    await server?.stop();
  });
  afterEach(async () => store?.close());
  beforeEach(async () => {
    await redis.del(keys.accounts());
    clockMs = 1_000_000;
    store = new LastKnownAccountStore(new RedisAccountStore(new Redis(server.url), { closeClient: true }), {
      log: pino({ level: 'silent' }),
      freshForMs: 1000,
      now: () => clockMs,
    });
  });

  it('reads a busy account from Redis once per freshForMs, however many requests ask', async () => {
    await otherProcess.create(record('busy'));
    await redis.config('RESETSTAT');
    const answers = await Promise.all(Array.from({ length: 20 }, () => store.get('busy')));
    for (let i = 0; i < 20; i++) expect((await store.get('busy'))?.id).toBe('busy');
    expect(answers.every((r) => r?.username === 'busy@example.com')).toBe(true);
    expect(await hgetCalls(redis)).toBe(1);

    clockMs += 1000;
    await store.get('busy');
    expect(await hgetCalls(redis)).toBe(2);
  });

  it("sees another process's change and deletion once its copy is freshForMs old", async () => {
    await otherProcess.create(record('shared'));
    expect((await store.get('shared'))?.host).toBe('imap.example.com');

    await otherProcess.update(record('shared', { host: 'imap2.example.com' }));
    clockMs += 999;
    expect((await store.get('shared'))?.host).toBe('imap.example.com');
    clockMs += 1;
    expect((await store.get('shared'))?.host).toBe('imap2.example.com');

    await otherProcess.delete('shared');
    clockMs += 1000;
    expect(await store.get('shared')).toBeNull();
  });

  it('sees its own changes at once, even over a read that was under way', async () => {
    // The inner store is the real one, with each read held until the test lets it answer, so a
    // read can be made to overlap a write.
    const inner = new RedisAccountStore(new Redis(server.url), { closeClient: true });
    const held: Array<() => void> = [];
    const gated = Object.assign(Object.create(inner) as RedisAccountStore, {
      get: async (id: string) => {
        const record = await inner.get(id);
        await new Promise<void>((resolve) => held.push(resolve));
        return record;
      },
    });
    const own = new LastKnownAccountStore(gated, { log: pino({ level: 'silent' }), freshForMs: 1000, now: () => clockMs });
    try {
      await otherProcess.create(record('mine'));
      const readUnderWay = own.get('mine'); // reads the old record, answers late
      await expect.poll(() => held.length).toBe(1);
      await own.update(record('mine', { host: 'changed.example.com' }));
      held.shift()!();
      expect((await readUnderWay)?.host).toBe('imap.example.com'); // it began before the change
      // The late answer is not remembered over the change: no further read, the new record.
      const after = own.get('mine');
      expect(held).toHaveLength(0);
      expect((await after)?.host).toBe('changed.example.com');

      await own.delete('mine');
      const gone = own.get('mine');
      await expect.poll(() => held.length).toBe(1);
      held.shift()!();
      expect(await gone).toBeNull();
    } finally {
      await own.close();
    }
  });

  it('never keeps a missing account: one created by another process is found on the next read', async () => {
    expect(await store.get('later')).toBeNull();
    await otherProcess.create(record('later'));
    expect((await store.get('later'))?.id).toBe('later');
  });
});

describe('account changes told to the other gateway processes (Redis pub/sub)', () => {
  const { dovecot } = testServers();
  let server: RedisServer;
  let a: TestGateway;
  let b: TestGateway;
  let env: Record<string, string>;

  beforeAll(async () => {
    server = await startRedis();
    // A minute of freshness: only the message from the other process can explain a quick change.
    env = { REDIS_URL: server.url, SECRET_KEY: randomBytes(32).toString('hex'), ACCOUNT_RECORD_FRESH_MS: '60000' };
    a = await startGateway(env);
    b = await startGateway(env);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await server?.stop();
  });

  it('a change made through one process is used at once by the other, sessions and all', async () => {
    const user = await dovecot.createUser('told');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Told' })]);
    const account = await createImapAccount(a.app, dovecot, user);
    const url = `/v1/accounts/${account}/mailboxes/INBOX/messages`;
    expect((await b.app.inject({ url })).statusCode).toBe(200); // b now has the record and a session

    const patch = (payload: object) => a.app.inject({ method: 'PATCH', url: `/v1/accounts/${account}?verify=false`, payload });
    expect((await patch({ name: 'Renamed' })).statusCode).toBe(200);
    await expect.poll(async () => (await b.app.inject({ url: `/v1/accounts/${account}` })).json().name, { timeout: 2_000 }).toBe('Renamed');

    // New credentials: b's logged-in session must go, so b's next login uses them (and fails).
    expect((await patch({ password: 'not-the-password' })).statusCode).toBe(200);
    await expect.poll(async () => (await b.app.inject({ url })).json().code, { timeout: 2_000 }).toBe('UPSTREAM_AUTH_FAILED');
    expect((await patch({ password: user.password })).statusCode).toBe(200);
    await expect.poll(async () => (await b.app.inject({ url })).statusCode, { timeout: 2_000 }).toBe(200);

    expect((await a.app.inject({ method: 'DELETE', url: `/v1/accounts/${account}` })).statusCode).toBe(204);
    await expect.poll(async () => (await b.app.inject({ url })).json().code, { timeout: 2_000 }).toBe('ACCOUNT_NOT_FOUND');
    // b logged its sessions of the account out: Dovecot sees no connection of the user any more.
    await expect.poll(() => imapConnectionsOf(dovecot, user.username), { timeout: 3_000 }).toBe(0);
  });

  it('a change whose message was lost still closes the old sessions, once the record is read again', async () => {
    const quick = await startGateway({ ...env, ACCOUNT_RECORD_FRESH_MS: '300' });
    try {
      const user = await dovecot.createUser('lost');
      await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Lost' })]);
      const account = await createImapAccount(quick.app, dovecot, user);
      const url = `/v1/accounts/${account}/mailboxes/INBOX/messages`;
      expect((await quick.app.inject({ url })).statusCode).toBe(200); // a session, logged in

      // Another process changes the login and its message never arrives: the record in Redis changes
      // with nobody told.
      const store = new RedisAccountStore(new Redis(server.url), { closeClient: true });
      try {
        const stored = (await store.get(account))!;
        await store.update({ ...stored, username: `${user.username}-renamed`, updatedAt: new Date().toISOString() });
      } finally {
        await store.close();
      }
      // Once the record is read again, the session of the old login goes and the new one is refused.
      await expect.poll(async () => (await quick.app.inject({ url })).json().code, { timeout: 3_000 }).toBe('UPSTREAM_AUTH_FAILED');
    } finally {
      await quick.close();
    }
  });
});
