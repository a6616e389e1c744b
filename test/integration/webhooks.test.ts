/**
 * Webhook administration over HTTP (API.md, Webhooks): create, list, read, change, delete, rotate
 * the secret, read the delivery records; the secret shown once and stored sealed; URLs checked by
 * the egress policy when saved; admin keys only. In file mode (DATA_DIR) and on a Redis of this
 * file's own (the webhook keys are fixed, other files must not see them).
 *
 * The test gateway's egress policy admits 127.0.0.1/32 (test/support/gateway.ts) and nothing else:
 * public IP literals stand for receivers on the internet, so no test needs DNS.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { keys } from '../../src/cache/keys.js';
import { loadConfig } from '../../src/config.js';
import type { DeliveryRecord } from '../../src/webhooks/types.js';
import { expectProblem, rejection } from '../support/assertions.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const ADMIN = `admin-${randomBytes(16).toString('hex')}`;
const admin = { authorization: `Bearer ${ADMIN}` };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
/** A receiver on the public internet (an IP literal: no DNS in tests). */
const PUBLIC_URL = 'https://1.1.1.1/hooks/mailgw?tenant=7';
const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;

interface Created {
  id: string;
  url: string;
  events: string[];
  accounts: string[];
  description: string | null;
  enabled: boolean;
  disabledReason: string | null;
  createdAt: string;
  updatedAt: string;
  secret: string;
}

async function create(gw: TestGateway, body: Record<string, unknown>): Promise<Created> {
  const res = await gw.app.inject({ method: 'POST', url: '/v1/webhooks', headers: admin, payload: body });
  expect(res.statusCode, res.body).toBe(201);
  const created = res.json() as Created;
  expect(res.headers.location).toBe(`/v1/webhooks/${created.id}`);
  return created;
}

function delivery(eventId: string, status: DeliveryRecord['status'] = 'delivered'): DeliveryRecord {
  return {
    eventId,
    type: 'message.new',
    attempt: 1,
    at: new Date().toISOString(),
    status,
    responseStatus: status === 'delivered' ? 204 : 500,
    error: status === 'delivered' ? null : 'HTTP 500',
    nextAttemptAt: status === 'retrying' ? new Date(Date.now() + 5000).toISOString() : null,
  };
}

/**
 * What a user relies on in either mode: the round trip, the secret shown only in create and rotate
 * (and never stored or logged in the clear), deliveries newest first, delete taking them along.
 * `stored()` is the store's raw text (the file, or every field of the Redis hash).
 */
async function roundTrip(gw: TestGateway, stored: () => Promise<string>): Promise<void> {
  const created = await create(gw, { url: PUBLIC_URL, events: ['message.new', 'message.deleted'], accounts: ['alice'], description: 'CRM sync' });
  expect(created).toMatchObject({
    id: expect.stringMatching(/^wh_[A-Za-z0-9_-]+$/),
    url: PUBLIC_URL,
    events: ['message.new', 'message.deleted'],
    accounts: ['alice'],
    description: 'CRM sync',
    enabled: true,
    disabledReason: null,
  });
  expect(created.secret).toMatch(SECRET);
  expect(created.updatedAt).toBe(created.createdAt);

  // Defaults: every event type, every account.
  const everything = await create(gw, { url: 'https://1.0.0.1/all' });
  expect(everything).toMatchObject({ events: ['*'], accounts: ['*'], description: null });
  expect(everything.secret).not.toBe(created.secret);

  const listed = await gw.app.inject({ url: '/v1/webhooks', headers: admin });
  expect(listed.statusCode).toBe(200);
  const { secret: _secret, ...shown } = created;
  // (Oldest first; these two may share a millisecond, so their order is not asserted.)
  expect(listed.json().webhooks).toHaveLength(2);
  expect(listed.json().webhooks).toContainEqual(shown);
  const one = await gw.app.inject({ url: `/v1/webhooks/${created.id}`, headers: admin });
  expect(one.json()).toEqual(shown);
  for (const res of [listed, one]) {
    expect(res.body).not.toContain(created.secret);
    expect(res.body).not.toMatch(/secret/i);
  }
  // Stored sealed: neither secret, nor its key bytes' base64, is in the store; the dispatcher can open it.
  expect(await stored()).not.toContain(created.secret);
  expect(await stored()).not.toContain(created.secret.slice('whsec_'.length));
  expect(await gw.app.services.webhooks.secretOf(created.id)).toBe(created.secret);

  // PATCH changes what it names, keeps the rest, and keeps the secret.
  const patched = await gw.app.inject({
    method: 'PATCH',
    url: `/v1/webhooks/${created.id}`,
    headers: admin,
    payload: { url: 'https://1.1.1.1/v2', events: ['*'], description: null, enabled: false },
  });
  expect(patched.statusCode, patched.body).toBe(200);
  expect(patched.json()).toMatchObject({ id: created.id, url: 'https://1.1.1.1/v2', events: ['*'], accounts: ['alice'], description: null, enabled: false });
  expect(Date.parse(patched.json().updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt));
  expect((await gw.app.inject({ url: `/v1/webhooks/${created.id}`, headers: admin })).json()).toEqual(patched.json());
  expect(await gw.app.services.webhooks.secretOf(created.id)).toBe(created.secret);

  // The dispatcher disables on 410 with a reason; an admin enabling it clears the reason.
  await gw.app.services.webhooks.disable(created.id, 'the receiver answered 410 Gone');
  expect((await gw.app.inject({ url: `/v1/webhooks/${created.id}`, headers: admin })).json()).toMatchObject({ enabled: false, disabledReason: 'the receiver answered 410 Gone' });
  const enabled = await gw.app.inject({ method: 'PATCH', url: `/v1/webhooks/${created.id}`, headers: admin, payload: { enabled: true } });
  expect(enabled.json()).toMatchObject({ enabled: true, disabledReason: null, url: 'https://1.1.1.1/v2' });

  // Rotation: a new secret, shown in that answer only; the old one is gone.
  const rotated = await gw.app.inject({ method: 'POST', url: `/v1/webhooks/${created.id}/rotate-secret`, headers: admin });
  expect(rotated.statusCode, rotated.body).toBe(200);
  const newSecret = rotated.json().secret as string;
  expect(newSecret).toMatch(SECRET);
  expect(newSecret).not.toBe(created.secret);
  expect(rotated.json()).toMatchObject({ id: created.id, url: 'https://1.1.1.1/v2', enabled: true });
  expect(await gw.app.services.webhooks.secretOf(created.id)).toBe(newSecret);
  expect(await stored()).not.toContain(newSecret);
  expect((await gw.app.inject({ url: '/v1/webhooks', headers: admin })).body).not.toContain(newSecret);

  // Deliveries: newest first, `limit` honoured, empty for a webhook with none.
  for (const eventId of ['e1', 'e2', 'e3']) await gw.app.services.webhooks.recordDelivery(created.id, delivery(eventId, eventId === 'e3' ? 'retrying' : 'delivered'));
  const deliveries = await gw.app.inject({ url: `/v1/webhooks/${created.id}/deliveries`, headers: admin });
  expect(deliveries.statusCode, deliveries.body).toBe(200);
  expect(deliveries.json().deliveries.map((d: DeliveryRecord) => d.eventId)).toEqual(['e3', 'e2', 'e1']);
  expect(deliveries.json().deliveries[0]).toEqual({ ...delivery('e3', 'retrying'), at: expect.any(String), nextAttemptAt: expect.any(String) });
  const two = await gw.app.inject({ url: `/v1/webhooks/${created.id}/deliveries?limit=2`, headers: admin });
  expect(two.json().deliveries.map((d: DeliveryRecord) => d.eventId)).toEqual(['e3', 'e2']);
  expect((await gw.app.inject({ url: `/v1/webhooks/${everything.id}/deliveries`, headers: admin })).json()).toEqual({ deliveries: [] });
  expectProblem(await gw.app.inject({ url: `/v1/webhooks/${created.id}/deliveries?limit=0`, headers: admin }), 400, 'VALIDATION_FAILED');

  // Delete: gone with its records; everything about it is 404 from then on.
  expect((await gw.app.inject({ method: 'DELETE', url: `/v1/webhooks/${created.id}`, headers: admin })).statusCode).toBe(204);
  await gw.app.services.webhooks.recordDelivery(everything.id, delivery('x'));
  const gone: InjectOptions[] = [
    { url: `/v1/webhooks/${created.id}` },
    { method: 'DELETE', url: `/v1/webhooks/${created.id}` },
    { method: 'PATCH', url: `/v1/webhooks/${created.id}`, payload: { enabled: false } },
    { method: 'POST', url: `/v1/webhooks/${created.id}/rotate-secret` },
    { url: `/v1/webhooks/${created.id}/deliveries` },
  ];
  expect((await rejection(gw.app.services.webhooks.recordDelivery(created.id, delivery('late')))).code).toBe('WEBHOOK_NOT_FOUND');
  for (const request of gone) {
    const problem = expectProblem(await gw.app.inject({ ...request, headers: admin }), 404, 'WEBHOOK_NOT_FOUND');
    expect(problem.detail).toContain(created.id);
  }
  expect((await gw.app.inject({ url: '/v1/webhooks', headers: admin })).json().webhooks.map((w: Created) => w.id)).toEqual([everything.id]);
  expect(await stored()).not.toContain(created.id);
}

describe('webhooks, file mode', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ API_KEYS: ADMIN }, { captureLogs: true });
  });
  afterAll(async () => gw?.close());

  it('round-trip: secret shown once, sealed in webhooks.json, never listed or logged; deliveries newest first, deleted with the webhook', async () => {
    await roundTrip(gw, () => readFile(path.join(gw.dataDir, 'webhooks.json'), 'utf8'));
    // Delete took the deleted webhook's delivery file along; the other's stays.
    const files = await readdir(path.join(gw.dataDir, 'webhook-deliveries'));
    expect(files).toHaveLength(1);
    const log = gw.logs.join('');
    expect(log).toContain('webhook created');
    expect(log).not.toMatch(/whsec_/);
  });

  it('refuses unknown fields, bad URLs and unknown event types with 400 VALIDATION_FAILED naming the field', async () => {
    const refused = async (payload: Record<string, unknown>, field: string, method: 'POST' | 'PATCH' = 'POST', url = '/v1/webhooks') => {
      const problem = expectProblem(await gw.app.inject({ method, url, headers: admin, payload }), 400, 'VALIDATION_FAILED');
      expect(problem.detail, JSON.stringify(payload)).toContain(field);
      return problem;
    };
    expect((await refused({ url: PUBLIC_URL, secret: 'whsec_mine' }, 'body')).detail).toContain('"secret"');
    await refused({ url: 'not a url' }, 'body/url');
    await refused({ url: '/relative/path' }, 'body/url');
    await refused({ url: 'ftp://1.1.1.1/drop' }, 'body/url');
    await refused({ url: 'javascript:alert(1)' }, 'body/url');
    await refused({ url: 'https://user:pass@1.1.1.1/hook' }, 'body/url');
    await refused({ url: 'https://1.1.1.1/hook#frag' }, 'body/url');
    await refused({ url: `https://1.1.1.1/${'a'.repeat(2100)}` }, 'body/url');
    await refused({ events: ['message.new'] }, 'url');
    await refused({ url: PUBLIC_URL, events: ['message.bogus'] }, 'body/events/0');
    // events.lost is never stored, webhook.test only sent by the test route: neither can be subscribed to.
    await refused({ url: PUBLIC_URL, events: ['events.lost'] }, 'body/events/0');
    await refused({ url: PUBLIC_URL, events: ['message.new', 'webhook.test'] }, 'body/events/1');
    await refused({ url: PUBLIC_URL, events: ['*', 'message.new'] }, 'body/events');
    await refused({ url: PUBLIC_URL, events: [] }, 'body/events');
    await refused({ url: PUBLIC_URL, accounts: ['*', 'alice'] }, 'body/accounts');
    await refused({ url: PUBLIC_URL, accounts: ['no spaces'] }, 'body/accounts/0');

    const target = await create(gw, { url: PUBLIC_URL });
    const at = `/v1/webhooks/${target.id}`;
    await refused({}, 'body', 'PATCH', at);
    await refused({ url: 'ftp://1.1.1.1/' }, 'body/url', 'PATCH', at);
    await refused({ events: ['nope'] }, 'body/events/0', 'PATCH', at);
    await refused({ secret: 'whsec_x' }, '"secret"', 'PATCH', at);
    await refused({ enabled: 'yes' }, 'body/enabled', 'PATCH', at);
    expectProblem(await gw.app.inject({ url: '/v1/webhooks/not-an-id', headers: admin }), 400, 'VALIDATION_FAILED');
    expectProblem(await gw.app.inject({ url: '/v1/webhooks/wh_unknown', headers: admin }), 404, 'WEBHOOK_NOT_FOUND');
    // Nothing refused was saved, and the target is unchanged.
    const all = (await gw.app.inject({ url: '/v1/webhooks', headers: admin })).json().webhooks as Created[];
    expect(all.find((w) => w.id === target.id)).toMatchObject({ url: PUBLIC_URL, events: ['*'], enabled: true });
    expect(all.every((w) => w.url.startsWith('https://'))).toBe(true);
    await gw.app.inject({ method: 'DELETE', url: at, headers: admin });
  });

  it('refuses URLs the egress policy forbids with 403 HOST_NOT_ALLOWED, at creation and on change, and plain http: to hosts not admitted', async () => {
    for (const url of ['https://169.254.169.254/latest/meta-data', 'https://10.0.0.1/hook', 'https://[::1]/hook', 'https://192.168.1.10/', 'https://[::ffff:169.254.169.254]/']) {
      const problem = expectProblem(await gw.app.inject({ method: 'POST', url: '/v1/webhooks', headers: admin, payload: { url } }), 403, 'HOST_NOT_ALLOWED');
      expect(problem.detail, url).toContain('EGRESS_ALLOW');
    }
    const plain = expectProblem(await gw.app.inject({ method: 'POST', url: '/v1/webhooks', headers: admin, payload: { url: 'http://1.1.1.1/hook' } }), 403, 'HOST_NOT_ALLOWED');
    expect(plain.detail).toMatch(/http:.*EGRESS_ALLOW.*https:/);
    // A host the operator admitted (127.0.0.1/32 here) may be reached over plain http:.
    const internal = await create(gw, { url: 'http://127.0.0.1:8080/hook' });
    expect(internal.url).toBe('http://127.0.0.1:8080/hook');

    const changed = expectProblem(
      await gw.app.inject({ method: 'PATCH', url: `/v1/webhooks/${internal.id}`, headers: admin, payload: { url: 'https://169.254.169.254/' } }),
      403,
      'HOST_NOT_ALLOWED',
    );
    expect(changed.detail).toContain('169.254.169.254');
    expect((await gw.app.inject({ url: `/v1/webhooks/${internal.id}`, headers: admin })).json().url).toBe('http://127.0.0.1:8080/hook');
    expect((await gw.app.inject({ url: '/v1/webhooks', headers: admin })).body).not.toContain('169.254.169.254');
    await gw.app.inject({ method: 'DELETE', url: `/v1/webhooks/${internal.id}`, headers: admin });
  });

  it('take an admin key: an access token, whatever its scopes, is 403 FORBIDDEN, and no key is 401', async () => {
    const target = await create(gw, { url: PUBLIC_URL });
    const tokenRes = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { accounts: ['*'], scopes: ['read', 'write', 'send', 'events'] } });
    const token = tokenRes.json().token as string;
    const routes: InjectOptions[] = [
      { method: 'POST', url: '/v1/webhooks', payload: { url: PUBLIC_URL } },
      { url: '/v1/webhooks' },
      { url: `/v1/webhooks/${target.id}` },
      { method: 'PATCH', url: `/v1/webhooks/${target.id}`, payload: { enabled: false } },
      { method: 'DELETE', url: `/v1/webhooks/${target.id}` },
      { method: 'POST', url: `/v1/webhooks/${target.id}/rotate-secret` },
      { url: `/v1/webhooks/${target.id}/deliveries` },
    ];
    for (const route of routes) {
      expectProblem(await gw.app.inject({ ...route, headers: bearer(token) }), 403, 'FORBIDDEN');
      expectProblem(await gw.app.inject(route), 401, 'UNAUTHORIZED');
    }
    // Nothing was changed or created by the refused calls.
    const all = (await gw.app.inject({ url: '/v1/webhooks', headers: admin })).json().webhooks as Created[];
    expect(all.filter((w) => w.id === target.id)).toEqual([expect.objectContaining({ enabled: true })]);
    expect(await gw.app.services.webhooks.secretOf(target.id)).toBe(target.secret);
  });
});

describe('webhooks, across a restart in file mode', () => {
  it('are all there after the gateway starts again on the same DATA_DIR, their secrets still opening', async () => {
    const first = await startGateway({ API_KEYS: ADMIN });
    let second: FastifyInstance | undefined;
    try {
      const created = await create(first, { url: PUBLIC_URL, events: ['message.new'], description: 'survives' });
      await first.app.services.webhooks.recordDelivery(created.id, delivery('e1'));
      await first.app.close();
      // The same directory (secret.key, webhooks.json, webhook-deliveries/) under a new process's app.
      second = await buildApp(loadConfig({ DATA_DIR: first.dataDir, API_KEYS: ADMIN }), { logger: pino({ level: 'silent' }) });
      const { secret: _secret, ...shown } = created;
      expect((await second.inject({ url: `/v1/webhooks/${created.id}`, headers: admin })).json()).toEqual(shown);
      expect((await second.inject({ url: `/v1/webhooks/${created.id}/deliveries`, headers: admin })).json().deliveries).toEqual([expect.objectContaining({ eventId: 'e1', status: 'delivered' })]);
      expect(await second.services.webhooks.secretOf(created.id)).toBe(created.secret);
    } finally {
      await second?.close();
      await rm(first.dataDir, { recursive: true, force: true });
    }
  });
});


describe('webhooks, Redis mode', () => {
  let server: RedisServer;
  let redis: Redis;
  let gw: TestGateway;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
    redis.on('error', () => undefined); // the last test stops Redis on purpose
    gw = await startGateway({ API_KEYS: ADMIN, REDIS_URL: server.url, SECRET_KEY: randomBytes(32).toString('hex') });
  });
  afterAll(async () => {
    await gw?.close();
    redis?.disconnect();
    await server?.stop();
  });

  it('round-trip in one Redis hash without TTL, secret sealed, and a version that moves on every write', async () => {
    const before = Number((await redis.get(keys.webhooksVersion())) ?? 0);
    await roundTrip(gw, async () => JSON.stringify(await redis.hgetall(keys.webhooks())));
    // create ×2, patch, disable, enable, rotate, delete: seven writes, each counted once.
    expect(Number(await redis.get(keys.webhooksVersion()))).toBe(before + 7);
    expect(await gw.app.services.webhooks.version()).toBe(before + 7);
    expect(await redis.ttl(keys.webhooks())).toBe(-1);
    expect(await redis.hlen(keys.webhooks())).toBe(1);
    const [id] = await redis.hkeys(keys.webhooks());
    expect(await redis.ttl(keys.webhookDeliveries(id!))).toBeGreaterThan(0);
    expect(JSON.parse((await redis.hget(keys.webhooks(), id!))!).sealedSecret).toMatch(/^v1\./);
  });

  it('answers 503 SERVICE_UNAVAILABLE, not "no such webhook", while Redis is down', async () => {
    const target = await create(gw, { url: PUBLIC_URL });
    await server.kill();
    try {
      expectProblem(await gw.app.inject({ url: `/v1/webhooks/${target.id}`, headers: admin }), 503, 'SERVICE_UNAVAILABLE');
    } finally {
      await server.restart();
    }
  });
});
