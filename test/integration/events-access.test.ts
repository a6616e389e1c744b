/**
 * Who may follow an account's live events, and for how long, against real Dovecot watchers:
 * - a token with the `events` scope for one account streams that account, and `/v1/events`
 *   without `accounts` streams only its accounts (issue 12, point 8);
 * - deleting an account ends the streams that follow it (a reconnect is then 404) and stops its
 *   watcher, in one process and across processes on one Redis.
 */
import { randomBytes } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../support/assertions.js';
import { imapAccountBody, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { firstLiveEvent, subjectOf, waitForEvent } from '../support/live-stream.js';
import { textMessage } from '../support/messages.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers, type DovecotUser } from '../support/servers.js';
import { connect, openStream, type SseClient } from '../support/sse-client.js';

const { dovecot } = testServers();
const ADMIN = `admin-${randomBytes(16).toString('hex')}`;
const admin = { authorization: `Bearer ${ADMIN}` };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const env = { API_KEYS: ADMIN, EVENTS_POLL_INTERVAL_MS: '500', EVENTS_STREAM_POLL_INTERVAL_MS: '500' };

/** The accounts a /v1/events cursor (`c1.` + base64url(deflate-raw(JSON))) names. */
function cursorAccounts(cursor: string): string[] {
  expect(cursor.startsWith('c1.')).toBe(true);
  return Object.keys(JSON.parse(inflateRawSync(Buffer.from(cursor.slice(3), 'base64url')).toString('utf8')) as object).sort();
}

async function addAccount(gw: TestGateway, user: DovecotUser, id: string): Promise<void> {
  const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', headers: admin, payload: imapAccountBody(dovecot, user, { id }) });
  expect(res.statusCode, res.body).toBe(201);
}

async function newToken(gw: TestGateway, accounts: string[], scopes: string[]): Promise<string> {
  const res = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { accounts, scopes } });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { token: string }).token;
}

const run = randomBytes(3).toString('hex');
const streams: SseClient[] = [];
const clients: ImapFlow[] = [];
afterAll(async () => {
  for (const stream of streams) stream.close();
  await Promise.all(clients.map((c) => c.logout().catch(() => undefined)));
});

async function mailClient(user: DovecotUser): Promise<ImapFlow> {
  const client = directImapClient(dovecot, user);
  await client.connect();
  clients.push(client);
  return client;
}

async function open(url: string, headers: Record<string, string>): Promise<SseClient> {
  const stream = await connect(url, headers);
  streams.push(stream);
  return stream;
}

describe('event streams with an access token', () => {
  let gw: TestGateway;
  let base: string;
  const alice = `alice-${run}`;
  const bob = `bob-${run}`;
  let aliceMail: ImapFlow;
  let bobMail: ImapFlow;
  beforeAll(async () => {
    gw = await startGateway(env);
    base = await gw.app.listen({ host: '127.0.0.1', port: 0 });
    const aliceUser = await dovecot.createUser('evalice');
    const bobUser = await dovecot.createUser('evbob');
    await addAccount(gw, aliceUser, alice);
    await addAccount(gw, bobUser, bob);
    aliceMail = await mailClient(aliceUser);
    bobMail = await mailClient(bobUser);
  });
  afterAll(async () => gw?.close());

  it('stream the accounts of the token only: its account on its own route, and only its accounts on /v1/events', { timeout: 60_000 }, async () => {
    const token = await newToken(gw, [alice], ['events']);
    const own = await open(`${base}/v1/accounts/${alice}/events`, bearer(token));
    expectProblem(await asProblem(openStream(`${base}/v1/accounts/${bob}/events`, bearer(token))), 404, 'ACCOUNT_NOT_FOUND');
    // Watched (alice by the token's stream, bob by an admin's) and past the first look.
    await firstLiveEvent(own, aliceMail);
    const everything = await open(`${base}/v1/events`, admin);
    const bobsOwn = await open(`${base}/v1/accounts/${bob}/events`, admin);
    await firstLiveEvent(bobsOwn, bobMail);

    const mine = await open(`${base}/v1/events`, bearer(token));
    await bobMail.append('INBOX', textMessage({ subject: 'For Bob' }));
    await waitForEvent(everything, (d) => subjectOf(d) === 'For Bob', "bob's change on the admin's stream");
    await aliceMail.append('INBOX', textMessage({ subject: 'For Alice' }));
    await waitForEvent(own, (d) => subjectOf(d) === 'For Alice', "alice's change on her account's stream");
    const got = await waitForEvent(mine, (d) => subjectOf(d) === 'For Alice', "alice's change on the token's /v1/events");
    expect(got.account).toBe(alice);
    expect(new Set(mine.events.map((e) => (JSON.parse(e.data) as { account: string }).account))).toEqual(new Set([alice]));
    // The stream follows alice alone: its cursor names her and nobody else (the admin's names both).
    expect(cursorAccounts(mine.events.at(-1)!.lastEventId)).toEqual([alice]);
    expect(cursorAccounts(everything.events.at(-1)!.lastEventId)).toEqual(expect.arrayContaining([alice, bob]));
  });
});

/** How the stream ended, or 'still open' after `timeoutMs`. */
function endedWithin(stream: SseClient, timeoutMs = 10_000): Promise<'end' | 'aborted' | 'still open'> {
  return Promise.race([stream.ended, new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), timeoutMs).unref())]);
}

/** A stream request that must be refused, as an inject-like response for expectProblem. */
async function asProblem(answer: ReturnType<typeof openStream>): Promise<{ statusCode: number; headers: Record<string, unknown>; json: () => unknown; body: string }> {
  const got = await answer;
  if ('stream' in got) {
    got.stream.close();
    throw new Error('expected a refusal, got a stream');
  }
  return { statusCode: got.status, headers: got.headers, body: got.body, json: () => JSON.parse(got.body) };
}

describe('deleting an account that is being watched', () => {
  it('ends the streams that follow it and stops its watcher (one process)', { timeout: 60_000 }, async () => {
    const gw = await startGateway(env);
    try {
      const base = await gw.app.listen({ host: '127.0.0.1', port: 0 });
      const user = await dovecot.createUser('evdel');
      const id = `del-${run}`;
      const keep = `keep-${run}`;
      await addAccount(gw, user, id);
      await addAccount(gw, await dovecot.createUser('evkeep'), keep);
      const stream = await open(`${base}/v1/accounts/${id}/events`, admin);
      const named = await open(`${base}/v1/events?accounts=${id},${keep}`, admin);
      await firstLiveEvent(stream, await mailClient(user));
      expect(gw.app.services.watchers.watching()).toContain(id);

      expect((await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${id}`, headers: admin })).statusCode).toBe(204);
      expect(await endedWithin(stream)).toBe('end');
      expect(await endedWithin(named)).toBe('end');
      expect(gw.app.services.watchers.watching()).not.toContain(id);
      expectProblem(await asProblem(openStream(`${base}/v1/accounts/${id}/events`, admin)), 404, 'ACCOUNT_NOT_FOUND');
    } finally {
      await gw.close();
    }
  });

  describe('across processes on one Redis', () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(async () => redis?.stop());

    it('ends the streams of every process and stops the watcher where it runs, whichever process deletes it', { timeout: 60_000 }, async () => {
      const shared = { ...env, REDIS_URL: redis.url, SECRET_KEY: randomBytes(32).toString('hex'), SESSION_SLOT_TTL_MS: '3000' };
      const a = await startGateway(shared);
      const b = await startGateway(shared);
      try {
        const baseA = await a.app.listen({ host: '127.0.0.1', port: 0 });
        const baseB = await b.app.listen({ host: '127.0.0.1', port: 0 });
        // Two accounts, both watched by A for subscribers of B: one deleted through B (the
        // subscriber's process), one through A (the watcher's, so B learns it only from Redis).
        const setUp = async (prefix: string) => {
          const user = await dovecot.createUser(`ev${prefix}`);
          const id = `${prefix}-${run}`;
          await addAccount(a, user, id);
          const onA = await open(`${baseA}/v1/accounts/${id}/events`, admin);
          await firstLiveEvent(onA, await mailClient(user));
          const onB = await open(`${baseB}/v1/accounts/${id}/events`, admin);
          onA.close();
          return { id, onB };
        };
        const [viaB, viaA] = await Promise.all([setUp('delb'), setUp('dela')]);
        expect(a.app.services.watchers.watching().sort()).toEqual([viaA.id, viaB.id].sort());
        expect(b.app.services.watchers.watching()).toEqual([]);

        expect((await b.app.inject({ method: 'DELETE', url: `/v1/accounts/${viaB.id}`, headers: admin })).statusCode).toBe(204);
        expect((await a.app.inject({ method: 'DELETE', url: `/v1/accounts/${viaA.id}`, headers: admin })).statusCode).toBe(204);
        expect(await endedWithin(viaB.onB)).toBe('end');
        expect(await endedWithin(viaA.onB)).toBe('end');
        await expect.poll(() => a.app.services.watchers.watching(), { timeout: 10_000 }).toEqual([]);
        expect(b.app.services.watchers.watching()).toEqual([]);
        for (const id of [viaA.id, viaB.id]) {
          expectProblem(await asProblem(openStream(`${baseB}/v1/accounts/${id}/events`, admin)), 404, 'ACCOUNT_NOT_FOUND');
        }
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
});
