import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { startRedis } from '../support/redis.js';
import { startGateway, type TestGateway } from '../support/gateway.js';

const secretKey = randomBytes(32).toString('hex');
let gw: TestGateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

describe('service endpoints', () => {
  it('/health answers while the process runs', async () => {
    gw = await startGateway();
    const res = await gw.app.inject({ url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('/ready is ok with the file store and in-memory cache', async () => {
    gw = await startGateway();
    const res = await gw.app.inject({ url: '/ready' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', store: 'ok', cache: 'ok' });
  });

  it('/ready follows Redis: ok while it runs, degraded while it is down, ok again after', async () => {
    const redis = await startRedis();
    try {
      gw = await startGateway({ REDIS_URL: redis.url, SECRET_KEY: secretKey });
      expect((await gw.app.inject({ url: '/ready' })).json()).toMatchObject({ status: 'ok', store: 'ok' });
      await redis.kill();
      const down = await gw.app.inject({ url: '/ready' });
      expect(down.statusCode).toBe(200);
      expect(down.json()).toMatchObject({ status: 'degraded', store: 'degraded' });
      await redis.restart();
      await expect
        .poll(async () => (await gw!.app.inject({ url: '/ready' })).json().status, { timeout: 10_000 })
        .toBe('ok');
    } finally {
      await redis.stop();
    }
  });

  it('starts even when Redis is unreachable, and says so on /ready', async () => {
    const port = await freePort();
    gw = await startGateway({ REDIS_URL: `redis://127.0.0.1:${port}`, SECRET_KEY: secretKey });
    const res = await gw.app.inject({ url: '/ready' });
    expect(res.json()).toMatchObject({ status: 'degraded', store: 'degraded' });
    const accounts = await gw.app.inject({ url: '/v1/accounts' });
    expect(accounts.statusCode).toBe(503);
    expect(accounts.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('serves Swagger UI at /docs and the OpenAPI document at /docs/json', async () => {
    gw = await startGateway({ API_KEYS: 'k'.repeat(32) });
    const ui = await gw.app.inject({ url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
    const doc = await gw.app.inject({ url: '/docs/json' });
    expect(doc.statusCode).toBe(200);
    const json = doc.json();
    expect(json.openapi).toBe('3.1.0');
    expect(json.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(Object.keys(json.paths)).toContain('/v1/accounts/{account}/mailboxes/{mailbox}/messages');
  });
});

describe('metrics', () => {
  it('exports request, upstream, pool and cache metrics in Prometheus text, behind the API key', async () => {
    const { testServers } = await import('../support/servers.js');
    const { textMessage } = await import('../support/messages.js');
    const { dovecot } = testServers();
    const key = 'm'.repeat(32);
    gw = await startGateway({ API_KEYS: key });
    const auth = { authorization: `Bearer ${key}` };
    const user = await dovecot.createUser('metrics');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Counted' })]);
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/accounts',
      headers: auth,
      payload: { protocol: 'imap', host: dovecot.host, port: dovecot.imapPort, security: 'none', username: user.username, password: user.password },
    });
    const account = res.json().id as string;
    const page = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages`, headers: auth })).json();
    const id = page.messages[0].id as string;
    await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}`, headers: auth });
    await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}`, headers: auth });
    await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/Nope/messages`, headers: auth });

    expect((await gw.app.inject({ url: '/metrics' })).statusCode).toBe(401);
    const metrics = await gw.app.inject({ url: '/metrics', headers: auth });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    const text = metrics.body;
    expect(text).toMatch(/mailgw_http_request_duration_seconds_count\{method="GET",route="\/v1\/accounts\/:account\/mailboxes\/:mailbox\/messages",status="200"\} 1/);
    expect(text).toMatch(/mailgw_upstream_operation_duration_seconds_count\{protocol="imap",operation="list_messages"\} [1-9]/);
    expect(text).toMatch(/mailgw_upstream_errors_total\{protocol="imap",code="MAILBOX_NOT_FOUND"\} 1/);
    expect(text).toMatch(/mailgw_cache_requests_total\{kind="message",result="miss"\} 1/);
    expect(text).toMatch(/mailgw_cache_requests_total\{kind="message",result="hit"\} 1/);
    expect(text).toMatch(/mailgw_pool_sessions\{protocol="imap",state="open"\} [1-9]/);
  });
});

describe('request log', () => {
  it('has one line per request, written when it is answered, with method, URL, status and time', async () => {
    const gw = await startGateway({}, { captureLogs: true });
    try {
      await gw.app.inject({ url: '/health' });
      await gw.app.inject({ url: '/v1/accounts/nobody' });
      // At info and above (the capture is at trace, where an 'incoming request' line is added).
      const lines = gw.logs
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((l) => (l.req !== undefined || l.res !== undefined) && Number(l.level) >= 30);
      expect(lines).toHaveLength(2);
      expect(lines.map((l) => [l.msg, (l.req as { method: string; url: string }).url, (l.res as { statusCode: number }).statusCode])).toEqual([
        ['request completed', '/health', 200],
        ['request completed', '/v1/accounts/nobody', 404],
      ]);
      for (const line of lines) {
        expect((line.req as { method: string }).method).toBe('GET');
        expect(typeof line.responseTime).toBe('number');
        expect(typeof line.reqId).toBe('string');
        expect((line.req as { remoteAddress: string }).remoteAddress).toBe('127.0.0.1');
      }
    } finally {
      await gw.close();
    }
  });
});
