/**
 * Deleting an account that is being watched ends the streams that follow it (a reconnect is then
 * 404) and stops its watcher, in one process and across processes on one Redis, whichever process
 * deletes it. Before, such streams stayed open for ever, and the watch manager retried the watch
 * at every renewal (decision 0014, "A deleted account").
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../support/assertions.js';
import { startGateway } from '../support/gateway.js';
import { endedWithin, firstLiveEvent, LiveEventsKit, refusal } from '../support/live-stream.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers } from '../support/servers.js';
import { openStream } from '../support/sse-client.js';

const { dovecot } = testServers();
const ADMIN = `admin-${randomBytes(16).toString('hex')}`;
const admin = { authorization: `Bearer ${ADMIN}` };
const env = { API_KEYS: ADMIN, EVENTS_POLL_INTERVAL_MS: '500', EVENTS_STREAM_POLL_INTERVAL_MS: '500' };
const run = randomBytes(3).toString('hex');
const kit = new LiveEventsKit(dovecot, admin);
afterAll(() => kit.close());

describe('deleting an account that is being watched', () => {
  it('ends the streams that follow it and stops its watcher (one process)', { timeout: 60_000 }, async () => {
    const gw = await startGateway(env);
    try {
      const base = await gw.app.listen({ host: '127.0.0.1', port: 0 });
      const user = await dovecot.createUser('evdel');
      const id = `del-${run}`;
      const keep = `keep-${run}`;
      await kit.addAccount(gw, user, id);
      await kit.addAccount(gw, await dovecot.createUser('evkeep'), keep);
      const stream = await kit.open(`${base}/v1/accounts/${id}/events`);
      const named = await kit.open(`${base}/v1/events?accounts=${id},${keep}`);
      await firstLiveEvent(stream, await kit.mailClient(user));
      expect(gw.app.services.watchers.watching()).toContain(id);

      expect((await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${id}`, headers: admin })).statusCode).toBe(204);
      expect(await endedWithin(stream)).toBe('end');
      expect(await endedWithin(named)).toBe('end');
      expect(gw.app.services.watchers.watching()).not.toContain(id);
      expectProblem(await refusal(openStream(`${base}/v1/accounts/${id}/events`, admin)), 404, 'ACCOUNT_NOT_FOUND');
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
          await kit.addAccount(a, user, id);
          const onA = await kit.open(`${baseA}/v1/accounts/${id}/events`);
          await firstLiveEvent(onA, await kit.mailClient(user));
          const onB = await kit.open(`${baseB}/v1/accounts/${id}/events`);
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
          expectProblem(await refusal(openStream(`${baseB}/v1/accounts/${id}/events`, admin)), 404, 'ACCOUNT_NOT_FOUND');
        }
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
});
