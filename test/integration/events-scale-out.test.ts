/**
 * Issue 12, points 5 and 8: several gateway processes on one Redis. Process A (a child process, so
 * it can be SIGKILLed) watches an account; a subscriber connected to process B (in this test's
 * process) receives its events. Exactly one process watches at a time (the `mailgw_watched_accounts`
 * gauges of both add up to at most one, and the account's IMAP sessions stay within its cap across
 * both). When A is killed, B takes the watch over once A's lease expires (SESSION_SLOT_TTL_MS), and
 * its subscriber receives the changes made during the gap and after, none lost and none repeated.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { compareEventIds } from '../../src/events/log/event-id.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { metricSum, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { directImapClient, imapConnectionsOf } from '../support/imap-client.js';
import { data, described, describeEvent, firstLiveEvent, subjectOf, waitForEvent } from '../support/live-stream.js';
import { textMessage } from '../support/messages.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { createAccountOver, messageIds } from '../support/restart-scenario.js';
import { testServers } from '../support/servers.js';
import { connect, type SseClient } from '../support/sse-client.js';

const { dovecot } = testServers();
const CAP = 3;

let redis: RedisServer;
let dataDir: string;
beforeAll(async () => {
  redis = await startRedis();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-scale-'));
});
afterAll(async () => {
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** How many accounts process A says it watches; 0 once it is gone. */
async function watchedBy(gateway: GatewayProcess): Promise<number> {
  try {
    const res = await fetch(`${gateway.base}/metrics`);
    return metricSum(await res.text(), 'mailgw_watched_accounts');
  } catch {
    return 0;
  }
}

async function watchedIn(gw: TestGateway): Promise<number> {
  return metricSum(await gw.app.services.metrics.render(), 'mailgw_watched_accounts');
}

it('a subscriber of process B gets the events of an account process A watches, one watcher at a time, and B takes over when A is killed, losing nothing', { timeout: 60_000 }, async () => {
  const env = {
    REDIS_URL: redis.url,
    SECRET_KEY: randomBytes(32).toString('hex'),
    SESSION_SLOT_TTL_MS: '3000',
    IMAP_MAX_SESSIONS_PER_ACCOUNT: String(CAP),
    POOL_ACQUIRE_TIMEOUT_MS: '15000',
    EVENTS_POLL_INTERVAL_MS: '500',
    EVENTS_STREAM_POLL_INTERVAL_MS: '500',
  };
  const user = await dovecot.createUser('scale');
  await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Flag me' })], { mailbox: 'Work' });
  const other: ImapFlow = directImapClient(dovecot, user);
  await other.connect();
  const a = await startGatewayProcess({ ...env, DATA_DIR: dataDir });
  const b = await startGateway(env);
  const streams: SseClient[] = [];
  let sampling = true;
  let sampler: Promise<void> | undefined;
  try {
    const baseB = await b.app.listen({ host: '127.0.0.1', port: 0 });
    const account = await createAccountOver(a.base, dovecot, user);
    const workIds = await messageIds(a.base, account, 'Work');

    // A subscriber of A makes A the watcher.
    const onA = await connect(`${a.base}/v1/accounts/${account}/events`);
    streams.push(onA);
    await firstLiveEvent(onA, other);
    expect(await watchedBy(a)).toBe(1);

    // Throughout: never two watchers, never more IMAP sessions than the account's cap.
    let maxWatchers = 0;
    let maxSessions = 0;
    sampler = (async () => {
      while (sampling) {
        const [watchersA, watchersB, sessions] = await Promise.all([watchedBy(a), watchedIn(b), imapConnectionsOf(dovecot, user.username)]);
        maxWatchers = Math.max(maxWatchers, watchersA + watchersB);
        maxSessions = Math.max(maxSessions, sessions);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    // A subscriber of B; then A's own subscriber leaves, and A keeps watching for B's.
    const onB = await connect(`${baseB}/v1/accounts/${account}/events`);
    streams.push(onB);
    onA.close();
    await other.append('INBOX', textMessage({ subject: 'Live INBOX' }));
    await other.append('Work', textMessage({ subject: 'Live Work' }));
    await waitForEvent(onB, (d) => subjectOf(d) === 'Live INBOX', 'the INBOX change');
    await waitForEvent(onB, (d) => subjectOf(d) === 'Live Work', 'the Work change');
    expect(await watchedBy(a)).toBe(1);
    expect(await watchedIn(b)).toBe(0);

    // A dies; changes made before B takes over are reported all the same.
    await a.kill();
    await other.append('INBOX', textMessage({ subject: 'Gap INBOX' }));
    await other.append('Work', textMessage({ subject: 'Gap Work' }));
    const lock = await other.getMailboxLock('Work');
    try {
      await other.messageFlagsAdd({ subject: 'Flag me' }, ['\\Seen']);
    } finally {
      lock.release();
    }
    await waitForEvent(onB, (d) => subjectOf(d) === 'Gap INBOX', 'the INBOX change during the takeover');
    await waitForEvent(onB, (d) => subjectOf(d) === 'Gap Work', 'the Work change during the takeover');
    await waitForEvent(onB, (d) => d.type === 'message.updated' && subjectOf(d) === 'Flag me', 'the flag change during the takeover');
    expect(b.app.services.watchers.watching()).toEqual([account]);

    // B now watches live.
    await other.append('INBOX', textMessage({ subject: 'After INBOX' }));
    await other.append('Work', textMessage({ subject: 'After Work' }));
    await waitForEvent(onB, (d) => subjectOf(d) === 'After INBOX', 'the INBOX change after the takeover');
    await waitForEvent(onB, (d) => subjectOf(d) === 'After Work', 'the Work change after the takeover');
    sampling = false;
    await sampler;

    expect([...described(onB)].sort()).toEqual(
      [
        'message.new INBOX Live INBOX',
        'message.new Work Live Work',
        'message.new INBOX Gap INBOX',
        'message.new Work Gap Work',
        'message.updated Work Flag me +\\Seen -',
        'message.new INBOX After INBOX',
        'message.new Work After Work',
      ].sort(),
    );
    const ids = onB.events.map((e) => data(e).id);
    expect(ids.every((id, i) => i === 0 || compareEventIds(ids[i - 1]!, id) < 0)).toBe(true);
    const flagged = onB.events.map(data).find((d) => describeEvent(d).startsWith('message.updated'))!;
    expect((flagged.message as { id: string }).id).toBe(workIds.get('Flag me'));
    expect(maxWatchers).toBe(1);
    // The gateways' sessions, across both processes, plus this test's own client (`other`).
    expect(maxSessions).toBeGreaterThan(1);
    expect(maxSessions).toBeLessThanOrEqual(CAP + 1);
  } catch (err) {
    (err as Error).message += `\n--- gateway A output ---\n${a.output()}`;
    throw err;
  } finally {
    sampling = false;
    await sampler?.catch(() => undefined);
    for (const stream of streams) stream.close();
    await other.logout().catch(() => undefined);
    await a.stop();
    await b.close();
  }
});
