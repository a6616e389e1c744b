/**
 * The event streams (SSE) end to end: a gateway listening on a loopback port, read by a real HTTP
 * client, over both real event logs (files under a temp DATA_DIR, and Redis Streams on the run's
 * Redis). Events are appended straight to the log, as a watcher would; accounts exist (created
 * without a login) but nothing here talks to a mail server.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, createRedisClient } from '../../src/cache/redis-connection.js';
import { decodeCursor } from '../../src/events/cursor.js';
import { FileEventLog, RedisEventLog } from '../../src/events/log/index.js';
import type { EventLog, EventType, MailEvent } from '../../src/events/types.js';
import { expectProblem } from '../support/assertions.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { RecordingDemand } from '../support/memory-event-log.js';
import { testServers } from '../support/servers.js';
import { connect, openStream, type SseClient, type SseEvent, type StreamAnswer } from '../support/sse-client.js';

const { redisUrl } = testServers();
const ADMIN = `admin-${randomBytes(16).toString('hex')}`;
const admin = { authorization: `Bearer ${ADMIN}` };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const run = randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const DRAIN_TIMEOUT_MS = 400;
const PING_INTERVAL_MS = 150;

interface OpenedLog {
  log: EventLog;
  /** Moves the log's clock on by `ms` (the file log's clock is ours; Redis's is waited for). */
  age(ms: number): Promise<void>;
  close(): Promise<void>;
}

interface Backend {
  name: string;
  open(retentionMs: number): Promise<OpenedLog>;
}

const backends: Backend[] = [
  {
    name: 'file event log',
    async open(retentionMs) {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-events-'));
      let offsetMs = 0;
      const log = new FileEventLog({ dataDir, retentionMs, segmentSpanMs: 50, now: () => Date.now() + offsetMs });
      return {
        log,
        age: async (ms) => {
          offsetMs += ms;
        },
        close: async () => {
          await log.close();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'Redis event log',
    async open(retentionMs) {
      const redis = createRedisClient({ url: redisUrl, clusterNodes: [] });
      redis.on('error', () => undefined);
      if (!(await connectRedis(redis, 3_000))) throw new Error('the run\'s Redis is not reachable');
      const log = new RedisEventLog(redis, { retentionMs });
      await log.listening();
      return {
        log,
        age: (ms) => sleep(ms),
        close: async () => {
          await log.close();
          await redis.quit();
        },
      };
    },
  },
];

/**
 * A log that counts how many events its readers were answered, to show what a stream reads ahead;
 * and that can be slow to answer `latestId` (a stream's opening), for a client that leaves meanwhile.
 */
function counting(log: EventLog, slowOpen: { ms: number }): { log: EventLog; read: () => number } {
  let read = 0;
  const wrapped = new Proxy(log, {
    get(target, name, receiver) {
      if (name === 'latestId') {
        return async (accountId: string) => {
          if (slowOpen.ms > 0) await sleep(slowOpen.ms);
          return target.latestId(accountId);
        };
      }
      if (name === 'readAfter') {
        return async (...args: Parameters<EventLog['readAfter']>) => {
          const result = await target.readAfter(...args);
          read += result.events.length;
          return result;
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { log: wrapped, read: () => read };
}

interface Setup {
  gw: TestGateway;
  base: string;
  log: EventLog;
  opened: OpenedLog;
  demand: RecordingDemand;
  read: () => number;
  /** Set `ms` to make opening a stream take that long. */
  slowOpen: { ms: number };
  close(): Promise<void>;
}

async function setUp(backend: Backend, accounts: string[], options: { retentionMs?: number; env?: Record<string, string> } = {}): Promise<Setup> {
  const opened = await backend.open(options.retentionMs ?? 3_600_000);
  const slowOpen = { ms: 0 };
  const { log, read } = counting(opened.log, slowOpen);
  const demand = new RecordingDemand();
  const gw = await startGateway(
    {
      API_KEYS: ADMIN,
      EVENTS_PING_INTERVAL_MS: String(PING_INTERVAL_MS),
      EVENTS_CLIENT_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
      EVENTS_STREAM_POLL_INTERVAL_MS: '1000',
      CORS_ORIGINS: 'https://app.example.com',
      ...options.env,
    },
    { events: { log, demand } },
  );
  for (const id of accounts) {
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/accounts?verify=false',
      headers: admin,
      payload: { id, protocol: 'imap', host: '127.0.0.1', port: 143, security: 'none', username: id, password: 'unused-password' },
    });
    expect(res.statusCode, res.body).toBe(201);
  }
  const address = await gw.app.listen({ port: 0, host: '127.0.0.1' });
  return {
    gw,
    base: address,
    log,
    opened,
    demand,
    read,
    slowOpen,
    close: async () => {
      await gw.close();
      await opened.close();
    },
  };
}

async function append(log: EventLog, account: string, count: number, type: EventType = 'message.new', fields: Record<string, unknown> = {}): Promise<MailEvent[]> {
  const stored: MailEvent[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) => ({ type, mailbox: 'INBOX', fields: { n: i + j, ...fields } }));
    stored.push(...(await log.append(account, batch)));
  }
  return stored;
}

const dataOf = (event: SseEvent) => JSON.parse(event.data) as MailEvent & { type: string };
const idsOf = (events: SseEvent[]) => events.map((e) => dataOf(e).id);

function asResponse(answer: StreamAnswer) {
  const body = 'body' in answer ? answer.body : '';
  return { statusCode: answer.status, body, headers: answer.headers as Record<string, unknown>, json: () => JSON.parse(body) as unknown };
}

async function createToken(gw: TestGateway, accounts: string[], scopes: string[]): Promise<string> {
  const res = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { accounts, scopes } });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { token: string }).token;
}

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function metric(gw: TestGateway, name: 'sseSlowDisconnects' | 'sseBufferedBytes' | 'sseClients'): Promise<number> {
  const metrics = gw.app.services.metrics;
  await metrics.render(); // runs the scrape hooks that refresh the gauges
  const values = (await metrics[name].get()).values;
  return values.reduce((sum, v) => sum + v.value, 0);
}

describe.each(backends)('event streams over the $name', (backend) => {
  const alice = `alice-${run}-${backend.name.split(' ')[0]}`;
  const bob = `bob-${run}-${backend.name.split(' ')[0]}`;
  let s: Setup;
  const clients: SseClient[] = [];
  const open = async (pathAndQuery: string, headers: Record<string, string> = admin): Promise<SseClient> => {
    const client = await connect(`${s.base}${pathAndQuery}`, headers);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    s = await setUp(backend, [alice, bob]);
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await s?.close();
  });

  it("streams an account's events in order, each as id: (its own id), event: (its type) and data: (its JSON)", async () => {
    const stream = await open(`/v1/accounts/${alice}/events`, { ...admin, origin: 'https://app.example.com', 'x-request-id': 'sse-1' });
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.headers['cache-control']).toBe('no-store');
    // The headers the app's hooks set on every answer, although this reply is written by hand.
    expect(stream.headers['x-request-id']).toBe('sse-1');
    expect(stream.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(stream.headers['access-control-expose-headers']).toContain('X-Request-Id');
    const appended = [...(await append(s.log, alice, 3)), ...(await append(s.log, alice, 2, 'message.deleted', { messageId: 'AV9B3wAAAAAB' }))];
    const events = await stream.waitForEvents(5);
    expect(events.map((e) => e.lastEventId)).toEqual(appended.map((e) => e.id));
    expect(events.map((e) => e.event)).toEqual(['message.new', 'message.new', 'message.new', 'message.deleted', 'message.deleted']);
    expect(events.map(dataOf)).toEqual(appended);
    expect(dataOf(events[4]!)).toMatchObject({ account: alice, mailbox: 'INBOX', messageId: 'AV9B3wAAAAAB' });
    // Started at "now": nothing from before the stream opened.
    stream.close();
  });

  it('streams several accounts on /v1/events, filtered by type, with a cursor as SSE id and each event keeping its own id', async () => {
    const stream = await open(`/v1/events?accounts=${alice},${bob}&types=message.new,mailbox.created`);
    const a = await append(s.log, alice, 2);
    await append(s.log, bob, 2, 'message.updated');
    const b = [...(await append(s.log, bob, 1, 'mailbox.created')), ...(await append(s.log, bob, 1))];
    const events = await stream.waitForEvents(4);
    expect(idsOf(events.filter((e) => dataOf(e).account === alice))).toEqual(a.map((e) => e.id));
    expect(idsOf(events.filter((e) => dataOf(e).account === bob))).toEqual(b.map((e) => e.id));
    for (const event of events) {
      expect(event.lastEventId).toMatch(/^c1\./);
      const cursor = decodeCursor(event.lastEventId, (id) => s.log.isValidId(id));
      expect('positions' in cursor && cursor.positions.get(dataOf(event).account)).toBe(dataOf(event).id);
    }
    await sleep(100);
    expect(stream.events).toHaveLength(4);
    stream.close();
  });

  it("resumes an account's stream after Last-Event-ID, or lastEventId, with nothing repeated or skipped; the header wins", async () => {
    const first = await open(`/v1/accounts/${alice}/events`);
    const before = await append(s.log, alice, 3);
    await first.waitForEvents(3);
    const last = first.events.at(-1)?.lastEventId ?? '';
    first.close();
    const missed = await append(s.log, alice, 4);

    const byHeader = await open(`/v1/accounts/${alice}/events`, { ...admin, 'last-event-id': last });
    expect(idsOf(await byHeader.waitForEvents(4))).toEqual(missed.map((e) => e.id));
    byHeader.close();

    const byQuery = await open(`/v1/accounts/${alice}/events?lastEventId=${encodeURIComponent(last)}`);
    expect(idsOf(await byQuery.waitForEvents(4))).toEqual(missed.map((e) => e.id));
    byQuery.close();

    // EventSource reconnects to its first URL with a newer header: the header's position counts.
    const both = await open(`/v1/accounts/${alice}/events?lastEventId=${encodeURIComponent(before[0]!.id)}`, { ...admin, 'last-event-id': missed[1]!.id });
    expect(idsOf(await both.waitForEvents(2))).toEqual(missed.slice(2).map((e) => e.id));
    await sleep(100);
    expect(both.events).toHaveLength(2);
    both.close();
  });

  it('resumes /v1/events from its cursor: every account continues where it was, also one that had no event yet', async () => {
    const first = await open(`/v1/events?accounts=${alice},${bob}`);
    await append(s.log, alice, 2);
    await first.waitForEvents(2);
    const cursor = first.events.at(-1)?.lastEventId ?? '';
    first.close();
    const missedBob = await append(s.log, bob, 3);
    const missedAlice = await append(s.log, alice, 2);

    const resumed = await open(`/v1/events?accounts=${alice},${bob}`, { ...admin, 'last-event-id': cursor });
    const events = await resumed.waitForEvents(5);
    expect(idsOf(events.filter((e) => dataOf(e).account === bob))).toEqual(missedBob.map((e) => e.id));
    expect(idsOf(events.filter((e) => dataOf(e).account === alice))).toEqual(missedAlice.map((e) => e.id));
    resumed.close();

    const byQuery = await open(`/v1/events?accounts=${alice},${bob}&lastEventId=${encodeURIComponent(cursor)}`);
    expect((await byQuery.waitForEvents(5)).map(dataOf).map((e) => e.id).sort()).toEqual([...missedBob, ...missedAlice].map((e) => e.id).sort());
    byQuery.close();
  });

  it('follows every account the caller may read when `accounts` is absent; a token sees only its own', async () => {
    const token = await createToken(s.gw, [alice], ['events']);
    const own = await open('/v1/events', bearer(token));
    const all = await open('/v1/events');
    await append(s.log, bob, 1);
    const [a] = await append(s.log, alice, 1);
    expect(idsOf(await own.waitForEvents(1))).toEqual([a?.id]);
    await all.waitForEvents(2);
    expect(new Set(all.events.map((e) => dataOf(e).account))).toEqual(new Set([alice, bob]));
    await sleep(100);
    expect(own.events).toHaveLength(1);
    own.close();
    all.close();
  });

  it('refuses what it cannot serve with problem+json: a forged id or cursor, an unknown type, an unknown or foreign account, a token without the events scope', async () => {
    const get = async (url: string, headers: Record<string, string> = admin) => asResponse(await openStream(`${s.base}${url}`, headers));
    const forgedId = expectProblem(await get(`/v1/accounts/${alice}/events`, { ...admin, 'last-event-id': 'yesterday' }), 400, 'VALIDATION_FAILED');
    expect(forgedId.detail).toMatch(/Last-Event-ID is not an event id this gateway issued/);
    expectProblem(await get(`/v1/accounts/${alice}/events?lastEventId=1-2-3`), 400, 'VALIDATION_FAILED');
    const forgedCursor = expectProblem(await get('/v1/events', { ...admin, 'last-event-id': 'c1.bm90IGEgY3Vyc29y' }), 400, 'VALIDATION_FAILED');
    expect(forgedCursor.detail).toMatch(/not a cursor this gateway issued/);
    // An account stream's id is no cursor for /v1/events.
    expectProblem(await get(`/v1/events?lastEventId=1718000000000-0`), 400, 'VALIDATION_FAILED');
    const type = expectProblem(await get(`/v1/events?types=message.new,message.exploded`), 400, 'VALIDATION_FAILED');
    expect(type.detail).toContain('"message.exploded"');
    expectProblem(await get(`/v1/accounts/${alice}/events?types=events.lost`), 400, 'VALIDATION_FAILED');
    expectProblem(await get(`/v1/events?accounts=${alice},a/b`), 400, 'VALIDATION_FAILED');

    expectProblem(await get('/v1/accounts/nobody/events'), 404, 'ACCOUNT_NOT_FOUND');
    expectProblem(await get(`/v1/events?accounts=${alice},nobody`), 404, 'ACCOUNT_NOT_FOUND');
    const token = await createToken(s.gw, [alice], ['events']);
    expectProblem(await get(`/v1/accounts/${bob}/events`, bearer(token)), 404, 'ACCOUNT_NOT_FOUND');
    expectProblem(await get(`/v1/events?accounts=${bob}`, bearer(token)), 404, 'ACCOUNT_NOT_FOUND');
    const reader = await createToken(s.gw, [alice], ['read']);
    expectProblem(await get(`/v1/accounts/${alice}/events`, bearer(reader)), 403, 'FORBIDDEN');
    expectProblem(await get('/v1/events', bearer(reader)), 403, 'FORBIDDEN');
    expectProblem(await get('/v1/events', {}), 401, 'UNAUTHORIZED');
    const head = await s.gw.app.inject({ method: 'HEAD', url: `/v1/accounts/${alice}/events`, headers: admin });
    expect(head.statusCode).toBe(405);
    expect(head.headers.allow).toBe('GET');
    // Nothing was retained for a refused stream.
    expect(s.demand.heldAccounts()).toEqual([]);
  });

  it('ends a stream within about a second of its access token being deleted', async () => {
    const res = await s.gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { accounts: [alice], scopes: ['events'] } });
    const { id, token } = res.json() as { id: string; token: string };
    const stream = await open(`/v1/accounts/${alice}/events`, bearer(token));
    const adminStream = await open(`/v1/accounts/${alice}/events`);
    expect((await s.gw.app.inject({ method: 'DELETE', url: `/v1/tokens/${id}`, headers: admin })).statusCode).toBe(204);
    const started = Date.now();
    expect(await stream.ended).toBe('end');
    expect(Date.now() - started).toBeLessThan(2_500);
    const [event] = await append(s.log, alice, 1);
    expect(idsOf(await adminStream.waitForEvents(1))).toEqual([event?.id]);
    adminStream.close();
    expectProblem(asResponse(await openStream(`${s.base}/v1/accounts/${alice}/events`, bearer(token))), 401, 'UNAUTHORIZED');
  });

  it('sends a : ping comment after the ping interval without an event', async () => {
    const stream = await open(`/v1/accounts/${alice}/events`);
    await stream.waitUntil(() => stream.comments.length >= 2, 2_000, () => `${stream.comments.length} comments`);
    expect(stream.comments.slice(0, 2)).toEqual(['ping', 'ping']);
    expect(stream.events).toHaveLength(0);
    stream.close();
  });

  it('outlives the request timeout (which bounds receiving a request, not a response)', async () => {
    const account = `long-${run}-${backend.name.split(' ')[0]}`;
    const own = await setUp(backend, [account], { env: { HTTP_REQUEST_TIMEOUT_MS: '300', HTTP_HEADERS_TIMEOUT_MS: '200' } });
    try {
      const stream = await connect(`${own.base}/v1/accounts/${account}/events`, admin);
      await sleep(1_200);
      const [event] = await append(own.log, account, 1);
      expect(idsOf(await stream.waitForEvents(1))).toEqual([event?.id]);
      expect(stream.comments.length).toBeGreaterThanOrEqual(5);
      stream.close();
    } finally {
      await own.close();
    }
  });

  it('retains the accounts it covers while open and releases them when the client leaves', async () => {
    const stream = await open(`/v1/events?accounts=${alice},${bob}`);
    expect(s.demand.heldAccounts()).toEqual([alice, bob].sort());
    stream.close();
    await until(() => s.demand.heldAccounts().length === 0, 2_000, 'the demand to be released');
  });

  it('gives everything up for a client that leaves while its stream is being opened', async () => {
    s.slowOpen.ms = 300;
    try {
      const request = http.get(`${s.base}/v1/accounts/${alice}/events`, { headers: admin });
      request.on('error', () => undefined);
      await until(() => s.demand.held(alice) > 0, 2_000, 'the stream to retain its account');
      request.destroy();
      await sleep(500);
      expect(s.demand.heldAccounts()).toEqual([]);
      expect(await metric(s.gw, 'sseClients')).toBe(0);
    } finally {
      s.slowOpen.ms = 0;
    }
  });

  it('disconnects a client that stops reading, holding little for it meanwhile; it resumes from its last id with nothing lost', async () => {
    const big = 'x'.repeat(64 * 1024);
    const stream = await open(`/v1/accounts/${alice}/events`);
    stream.pause();
    const readBefore = s.read();
    const appended: MailEvent[] = [];
    let maxBufferedBytes = 0;
    const slowBefore = await metric(s.gw, 'sseSlowDisconnects');
    // More than loopback's socket buffers take (a few MB on each side), so the gateway sees backpressure.
    for (let i = 0; i < 400 && (await metric(s.gw, 'sseSlowDisconnects')) === slowBefore; i += 10) {
      appended.push(...(await append(s.log, alice, 10, 'message.new', { big })));
      maxBufferedBytes = Math.max(maxBufferedBytes, await metric(s.gw, 'sseBufferedBytes'));
    }
    await until(async () => (await metric(s.gw, 'sseSlowDisconnects')) > slowBefore, 5_000, 'the slow client to be disconnected');
    // What the gateway held for it: one socket high-water mark (16 KiB) and a frame, never a backlog.
    expect(maxBufferedBytes).toBeGreaterThan(0);
    expect(maxBufferedBytes).toBeLessThan(16 * 1024 + 2 * (big.length + 1024));
    stream.resume();
    expect(await stream.ended).toBe('aborted');
    const received = stream.events.length;
    expect(received).toBeLessThan(appended.length);
    expect(idsOf(stream.events)).toEqual(appended.slice(0, received).map((e) => e.id));
    // It read ahead of what reached the client by at most one page (and the frames dropped with the socket).
    expect(s.read() - readBefore - received).toBeLessThanOrEqual(100 + 3);

    const resumed = await open(`/v1/accounts/${alice}/events`, { ...admin, 'last-event-id': stream.events.at(-1)!.lastEventId });
    const rest = await resumed.waitForEvents(appended.length - received, 20_000);
    expect(idsOf(rest)).toEqual(appended.slice(received).map((e) => e.id));
    resumed.close();
  }, 60_000);

  it('starts with one events.lost per account whose resume point is older than what is kept, then the oldest kept', async () => {
    const suffix = `${run}-${backend.name.split(' ')[0]}`;
    const [lostA, lostB, fresh] = [`lost-a-${suffix}`, `lost-b-${suffix}`, `fresh-${suffix}`];
    const short = await setUp(backend, [lostA, lostB, fresh], { retentionMs: 300 });
    try {
      const first = await connect(`${short.base}/v1/events?accounts=${lostA},${lostB},${fresh}`, admin);
      await append(short.log, lostA, 3);
      await first.waitForEvents(1);
      // After A's first event: A's other two and (from its start) B's event are still to come.
      const cursor = first.events[0]?.lastEventId ?? '';
      const aFrom = dataOf(first.events[0]!).id;
      first.close();
      await append(short.log, lostB, 1);
      await short.opened.age(600);
      // Appends after the retention trim what came before them.
      const keptA = await append(short.log, lostA, 2);
      const keptB = await append(short.log, lostB, 1);
      const keptFresh = await append(short.log, fresh, 1);

      const resumed = await connect(`${short.base}/v1/events?accounts=${lostA},${lostB},${fresh}`, { ...admin, 'last-event-id': cursor });
      const events = await resumed.waitForEvents(6);
      const lost = events.filter((e) => e.event === 'events.lost');
      expect(lost.map((e) => JSON.parse(e.data) as unknown).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual([
        { type: 'events.lost', account: lostA },
        { type: 'events.lost', account: lostB },
      ]);
      expect(lost.every((e) => !e.hadId)).toBe(true);
      const after = (account: string) => events.filter((e) => e.event !== 'events.lost' && dataOf(e).account === account);
      expect(idsOf(after(lostA))).toEqual(keptA.map((e) => e.id));
      expect(idsOf(after(lostB))).toEqual(keptB.map((e) => e.id));
      // An account whose resume point lost nothing gets no events.lost.
      expect(idsOf(after(fresh))).toEqual(keptFresh.map((e) => e.id));
      for (const account of [lostA, lostB]) {
        const told = events.findIndex((e) => e.event === 'events.lost' && (JSON.parse(e.data) as { account: string }).account === account);
        expect(told).toBeLessThan(events.indexOf(after(account)[0]!));
      }
      await sleep(100);
      expect(resumed.events).toHaveLength(6);
      resumed.close();

      const one = await connect(`${short.base}/v1/accounts/${lostA}/events`, { ...admin, 'last-event-id': aFrom });
      const oneEvents = await one.waitForEvents(3);
      expect(oneEvents[0]).toMatchObject({ event: 'events.lost', hadId: false });
      expect(JSON.parse(oneEvents[0]!.data)).toEqual({ type: 'events.lost', account: lostA });
      expect(idsOf(oneEvents.slice(1))).toEqual(keptA.map((e) => e.id));
      one.close();
    } finally {
      await short.close();
    }
  });

  it('ends every open stream when the app closes, promptly, a stalled one too, and gives the demand up', async () => {
    const own = await setUp(backend, [`close-${run}-${backend.name.split(' ')[0]}`]);
    const account = `close-${run}-${backend.name.split(' ')[0]}`;
    const quiet = await connect(`${own.base}/v1/accounts/${account}/events`, admin);
    const stalled = await connect(`${own.base}/v1/events`, admin);
    stalled.pause();
    await append(own.log, account, 30, 'message.new', { big: 'y'.repeat(64 * 1024) });
    await quiet.waitForEvents(30);
    expect(own.demand.held(account)).toBe(2);
    const started = Date.now();
    await own.close();
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await quiet.ended).toBe('end');
    stalled.resume();
    await stalled.ended;
    expect(own.demand.heldAccounts()).toEqual([]);
  });
});
