/**
 * Issue 12, point 8: "the gateway killed and restarted with changes made meanwhile". A gateway
 * process (a child, `node --import tsx src/server.ts`) watches an account for a client's event
 * stream and is SIGKILLed; another mail client then appends, flags and expunges in INBOX and in
 * another folder; the gateway starts again on the same DATA_DIR (or the same Redis), and the client
 * resumes with Last-Event-ID. What it relies on: it gets exactly the changes made meanwhile, each
 * once, in the log's order, and nothing from before its resume point.
 *
 * Once in the embedded setup (events and watcher state under DATA_DIR) and once with Redis.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareEventIds } from '../../src/events/log/event-id.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { directImapClient } from '../support/imap-client.js';
import { textMessage } from '../support/messages.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers } from '../support/servers.js';
import { connect, type SseClient, type SseEvent } from '../support/sse-client.js';

const { dovecot } = testServers();

type EventData = Record<string, unknown> & { id: string; type: string; account: string; mailbox: string | null };
const data = (e: SseEvent): EventData => JSON.parse(e.data) as EventData;
const subjectOf = (d: EventData): string | undefined => (d.message as { subject?: string } | undefined)?.subject;

/** What a test compares: the type, the mailbox and what the event is about. */
function describeEvent(d: EventData): string {
  if (d.type === 'message.deleted') return `${d.type} ${d.mailbox} ${String(d.messageId)}`;
  if (d.type === 'message.updated') return `${d.type} ${d.mailbox} ${subjectOf(d)} +${(d.flags as { added: string[] }).added.join(',')} -${(d.flags as { removed: string[] }).removed.join(',')}`;
  return `${d.type} ${d.mailbox} ${subjectOf(d) ?? ''}`;
}

async function post(base: string, url: string, body: unknown): Promise<Response> {
  return fetch(`${base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function json<T>(base: string, url: string): Promise<T> {
  const res = await fetch(`${base}${url}`);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function messageIds(base: string, account: string, mailbox: string): Promise<Map<string, string>> {
  const page = await json<{ messages: Array<{ id: string; subject: string }> }>(base, `/v1/accounts/${account}/mailboxes/${mailbox}/messages?limit=100`);
  return new Map(page.messages.map((m) => [m.subject, m.id]));
}

/**
 * Waits until the stream's watcher is past its first look (which records what is there without
 * events): appends probes to INBOX until one is reported, and answers that event. Earlier probes
 * were either part of the first look or reported before it, so nothing else is pending then.
 */
async function firstLiveEvent(stream: SseClient, other: ImapFlow): Promise<EventData> {
  for (let probe = 1; probe <= 10; probe++) {
    const subject = `Probe ${probe}`;
    await other.append('INBOX', textMessage({ subject }));
    try {
      let found: EventData | undefined;
      await stream.waitUntil(() => (found = stream.events.map(data).find((d) => subjectOf(d) === subject)) !== undefined, 4_000);
      return found!;
    } catch (err) {
      if (/ended/.test((err as Error).message)) throw err;
    }
  }
  throw new Error(`no probe was reported: ${JSON.stringify(stream.events.map((e) => describeEvent(data(e))))}`);
}

/** Waits for an event matching `match` and answers it. */
async function waitFor(stream: SseClient, match: (d: EventData) => boolean, what: string, timeoutMs = 20_000): Promise<EventData> {
  let found: EventData | undefined;
  await stream.waitUntil(
    () => (found = stream.events.map(data).find(match)) !== undefined,
    timeoutMs,
    () => `${what} missing from ${JSON.stringify(stream.events.map((e) => describeEvent(data(e))))}`,
  );
  return found!;
}

interface Scenario {
  name: string;
  /** Environment of both runs of the gateway (DATA_DIR, SECRET_KEY, REDIS_URL, ...). */
  env: () => Record<string, string>;
}

let redis: RedisServer | undefined;
let dataDirs: string[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
  await Promise.all(dataDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  dataDirs = [];
});

const secretKey = randomBytes(32).toString('hex');
const common = { SECRET_KEY: secretKey, EVENTS_POLL_INTERVAL_MS: '500', EVENTS_STREAM_POLL_INTERVAL_MS: '500' };

describe.each<Scenario>([
  { name: 'embedded (DATA_DIR, no Redis)', env: () => ({ ...common }) },
  // The restarted process is a new lease owner: it takes the watch once the dead one's lease expires.
  { name: 'Redis', env: () => ({ ...common, REDIS_URL: redis!.url, SESSION_SLOT_TTL_MS: '3000' }) },
])('a gateway killed and restarted, $name', (scenario) => {
  it('reports on resume exactly the changes made while it was down, in INBOX and another folder, each once, in order', { timeout: 60_000 }, async () => {
    const user = await dovecot.createUser('restart');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Keep' }), textMessage({ subject: 'Flag in INBOX' }), textMessage({ subject: 'Expunge from INBOX' })]);
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Flag in Work' }), textMessage({ subject: 'Expunge from Work' })], { mailbox: 'Work' });
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-restart-'));
    dataDirs.push(dataDir);
    const env = { ...scenario.env(), DATA_DIR: dataDir };
    const other = directImapClient(dovecot, user);
    await other.connect();
    let gateway: GatewayProcess | undefined = await startGatewayProcess(env);
    const streams: SseClient[] = [];
    try {
      const created = await post(gateway.base, '/v1/accounts', { protocol: 'imap', host: dovecot.host, port: dovecot.imapPort, security: 'none', username: user.username, password: user.password });
      expect(created.status, await created.clone().text()).toBe(201);
      const { id: account } = (await created.json()) as { id: string };
      const inboxIds = await messageIds(gateway.base, account, 'INBOX');
      const workIds = await messageIds(gateway.base, account, 'Work');

      const first = await connect(`${gateway.base}/v1/accounts/${account}/events`);
      streams.push(first);
      const seen = await firstLiveEvent(first, other);
      expect(seen).toMatchObject({ type: 'message.new', mailbox: 'INBOX', account });

      await gateway.kill();
      expect(await first.ended).toBe('aborted');
      gateway = undefined;

      // Another client changes both folders while no gateway runs.
      await other.append('INBOX', textMessage({ subject: 'New in INBOX' }));
      await other.append('Work', textMessage({ subject: 'New in Work' }));
      for (const mailbox of ['INBOX', 'Work']) {
        const lock = await other.getMailboxLock(mailbox);
        try {
          const flag = (await other.search({ subject: `Flag in ${mailbox}` }, { uid: true })) as number[];
          const expunge = (await other.search({ subject: `Expunge from ${mailbox}` }, { uid: true })) as number[];
          expect(flag).toHaveLength(1);
          expect(expunge).toHaveLength(1);
          await other.messageFlagsAdd(flag, ['\\Flagged'], { uid: true });
          await other.messageDelete(expunge, { uid: true });
        } finally {
          lock.release();
        }
      }

      gateway = await startGatewayProcess(env);
      const resumed = await connect(`${gateway.base}/v1/accounts/${account}/events`, { 'last-event-id': seen.id });
      streams.push(resumed);
      const expected = [
        'message.new INBOX New in INBOX',
        'message.updated INBOX Flag in INBOX +\\Flagged -',
        `message.deleted INBOX ${inboxIds.get('Expunge from INBOX')}`,
        'message.new Work New in Work',
        'message.updated Work Flag in Work +\\Flagged -',
        `message.deleted Work ${workIds.get('Expunge from Work')}`,
      ];
      for (const line of expected) await waitFor(resumed, (d) => describeEvent(d) === line, line);
      // A live change after them in each folder: once these arrive, anything the restart reported
      // (a repeat included) has arrived before them.
      await other.append('INBOX', textMessage({ subject: 'After INBOX' }));
      await other.append('Work', textMessage({ subject: 'After Work' }));
      await waitFor(resumed, (d) => subjectOf(d) === 'After INBOX', 'the INBOX change after the restart');
      await waitFor(resumed, (d) => subjectOf(d) === 'After Work', 'the Work change after the restart');

      const events = resumed.events.map(data);
      const during = events.filter((d) => !['After INBOX', 'After Work'].includes(subjectOf(d) ?? ''));
      expect(during.map(describeEvent).sort()).toEqual([...expected].sort());
      expect(events.every((d) => d.account === account)).toBe(true);
      // In the log's order, each once, all after the resume point; each SSE id is the event's own.
      const ids = events.map((d) => d.id);
      expect(ids.every((id, i) => i === 0 || compareEventIds(ids[i - 1]!, id) < 0)).toBe(true);
      expect(compareEventIds(seen.id, ids[0]!)).toBeLessThan(0);
      expect(resumed.events.map((e) => e.lastEventId)).toEqual(ids);
      // The ids the events name are those the REST routes accept.
      const added = events.find((d) => describeEvent(d) === 'message.new Work New in Work')!;
      const read = await json<{ subject: string }>(gateway.base, `/v1/accounts/${account}/mailboxes/Work/messages/${(added.message as { id: string }).id}`);
      expect(read.subject).toBe('New in Work');
    } catch (err) {
      if (gateway) (err as Error).message += `\n--- gateway output ---\n${gateway.output()}`;
      throw err;
    } finally {
      for (const stream of streams) stream.close();
      await other.logout().catch(() => undefined);
      await gateway?.stop();
    }
  });
});
