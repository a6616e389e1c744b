/**
 * HTTP behaviour that needs no mail server: problem documents for the HTTP layer's own refusals,
 * 405 with Allow, request ids, CORS, and the metrics' names. A real app, called with inject.
 */
import type { FastifyError } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { toGatewayError } from '../../src/http/problem.js';
import Fastify from 'fastify';
import { requireDeclaredAccess } from '../../src/tenants/access.js';
import { startGateway, type TestGateway } from '../support/gateway.js';

const ACCOUNT = { protocol: 'imap', host: '127.0.0.1', port: 1, security: 'none', username: 'u', password: 'p' };

describe('the HTTP layer answers problem documents that say how to fix the request', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => gw.close());

  it('is 405 METHOD_NOT_ALLOWED with Allow for a known path and a wrong method, and 404 for an unknown path', async () => {
    const wrong = await gw.app.inject({ method: 'DELETE', url: '/v1/accounts' });
    expect(wrong.statusCode).toBe(405);
    expect(wrong.headers['content-type']).toContain('application/problem+json');
    expect(wrong.headers.allow).toBe('GET, HEAD, POST');
    expect(wrong.json()).toMatchObject({ code: 'METHOD_NOT_ALLOWED', status: 405, title: 'Method Not Allowed' });

    const put = await gw.app.inject({ method: 'PUT', url: '/v1/accounts/alice/mailboxes/Work%2F2024/messages/AV9B3wAAAAAB' });
    expect(put.statusCode).toBe(405);
    expect(put.headers.allow).toBe('DELETE, GET, HEAD, PATCH');

    const unknown = await gw.app.inject({ method: 'GET', url: '/v1/acounts' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('names an unknown body field, and the field a rule is about', async () => {
    const typo = await gw.app.inject({ method: 'POST', url: '/v1/accounts?verify=false', payload: { ...ACCOUNT, passwrd: 'x' } });
    expect(typo.statusCode).toBe(400);
    expect(typo.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(typo.json().detail).toContain('"passwrd"');

    const limit = await gw.app.inject({ method: 'GET', url: '/v1/accounts/alice/mailboxes/INBOX/messages?limit=500' });
    expect(limit.json()).toMatchObject({ code: 'VALIDATION_FAILED', detail: 'querystring/limit must be <= 200' });

    const protocol = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: { ...ACCOUNT, protocol: 'smtp' } });
    expect(protocol.json().detail).toContain('body/protocol must be one of "imap", "pop3"');
  });

  it('refuses control characters in the host and username (create and PATCH), and line breaks in a secret, before any dial', async () => {
    const created = await gw.app.inject({ method: 'POST', url: '/v1/accounts?verify=false', payload: { ...ACCOUNT, id: 'edges' } });
    expect(created.statusCode, created.body).toBe(201);
    const cases: Array<[string, string, string]> = [
      ['host', 'imap.example.com\u0000.evil', 'must be a host name or IP address, without spaces, slashes or control characters'],
      ['host', 'imap\u0007example.com', 'must be a host name or IP address, without spaces, slashes or control characters'],
      ['host', 'imap.example.com\u0085', 'must be a host name or IP address, without spaces, slashes or control characters'],
      ['username', 'alice\r\nA1 LOGOUT', 'must not contain control characters (CR, LF, NUL, TAB, DEL, …)'],
      ['username', 'alice\u0000', 'must not contain control characters (CR, LF, NUL, TAB, DEL, …)'],
      ['password', 'p\r\nDELE 1', 'must not contain CR, LF or NUL'],
      ['accessToken', 'tok\u0000en', 'must not contain CR, LF or NUL'],
    ];
    for (const [field, value, rule] of cases) {
      const { password: _password, ...withoutSecret } = ACCOUNT;
      const body = field === 'accessToken' ? { ...withoutSecret, accessToken: value } : { ...ACCOUNT, [field]: value };
      for (const res of [
        await gw.app.inject({ method: 'POST', url: '/v1/accounts?verify=false', payload: body }),
        await gw.app.inject({ method: 'PATCH', url: '/v1/accounts/edges', payload: { [field]: value } }),
      ]) {
        expect(res.statusCode, `${field} ${JSON.stringify(value)}`).toBe(400);
        expect(res.json()).toMatchObject({ code: 'VALIDATION_FAILED', detail: `body/${field} ${rule}` });
      }
    }
    // What is ordinary still passes: an IDN host, an IPv6 literal, a password with spaces and symbols.
    for (const patch of [{ host: 'bücher.example' }, { host: '[::1]' }, { password: 'a b\t"c"' }]) {
      expect((await gw.app.inject({ method: 'PATCH', url: '/v1/accounts/edges', payload: patch })).statusCode, JSON.stringify(patch)).not.toBe(400);
    }
  });

  it('is 415 naming the media type the route takes', async () => {
    const json = await gw.app.inject({ method: 'POST', url: '/v1/accounts', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    expect(json.statusCode).toBe(415);
    expect(json.json()).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(json.json().detail).toContain('application/json');
    expect(json.json().detail).toContain('text/plain');

    const append = await gw.app.inject({
      method: 'POST',
      url: '/v1/accounts/alice/mailboxes/INBOX/messages',
      headers: { 'content-type': 'application/json' },
      payload: { subject: 'not a message' },
    });
    expect(append.statusCode).toBe(415);
    expect(append.json().detail).toContain('message/rfc822');
  });

  it('uses a sane incoming X-Request-Id as the request id and replaces anything else', async () => {
    const kept = await gw.app.inject({ method: 'GET', url: '/v1/nope', headers: { 'x-request-id': 'trace-4bf92f3577b34da6:01' } });
    expect(kept.headers['x-request-id']).toBe('trace-4bf92f3577b34da6:01');
    expect(kept.json().requestId).toBe('trace-4bf92f3577b34da6:01');

    for (const bad of ['a'.repeat(129), 'has space', '<script>', '']) {
      const replaced = await gw.app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': bad } });
      expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('sends no CORS headers unless CORS_ORIGINS is set', async () => {
    const res = await gw.app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://app.example.com' } });
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await gw.app.inject({
      method: 'OPTIONS',
      url: '/v1/accounts',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' },
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('exports the default metrics under their standard names and no Redis gauge without Redis', async () => {
    const text = (await gw.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).not.toMatch(/mailgw_process_|mailgw_nodejs_/);
    expect(text).not.toContain('mailgw_redis_up');
    expect(text).toContain('mailgw_http_request_duration_seconds');
  });

  it('says in the detail that EGRESS_ALLOW admits a refused mail host, without its address', async () => {
    const strict = await startGateway({ EGRESS_ALLOW: '' });
    try {
      const res = await strict.app.inject({ method: 'POST', url: '/v1/accounts', payload: { ...ACCOUNT, host: 'localhost' } });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'HOST_NOT_ALLOWED' });
      expect(res.json().detail).toContain('EGRESS_ALLOW');
      expect(res.json().detail).toContain('"localhost"');
      expect(res.json().detail).not.toMatch(/127\.0\.0\.1|::1|loopback/);
    } finally {
      await strict.close();
    }
  });
});

describe('CORS, when CORS_ORIGINS names origins', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ CORS_ORIGINS: 'https://app.example.com', API_KEYS: 'k'.repeat(32) });
  });
  afterAll(async () => gw.close());

  it('answers a preflight from a listed origin before authentication, and lets the page read the listing headers', async () => {
    const preflight = await gw.app.inject({
      method: 'OPTIONS',
      url: '/v1/accounts/alice/mailboxes/INBOX/messages',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, if-none-match' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(String(preflight.headers['access-control-allow-headers'])).toMatch(/Authorization/);
    expect(String(preflight.headers['access-control-allow-methods'])).toContain('PATCH');

    const call = await gw.app.inject({ method: 'GET', url: '/v1/accounts', headers: { origin: 'https://app.example.com', authorization: `Bearer ${'k'.repeat(32)}` } });
    expect(call.statusCode).toBe(200);
    expect(call.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(String(call.headers['access-control-expose-headers'])).toContain('ETag');
    expect(String(call.headers['access-control-expose-headers'])).toMatch(/RateLimit-Remaining.*RateLimit-Reset/);
  });

  it('gives an origin that is not listed no access', async () => {
    const res = await gw.app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://evil.example' } });
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('still refuses calls without a key', async () => {
    const res = await gw.app.inject({ method: 'GET', url: '/v1/accounts', headers: { origin: 'https://app.example.com' } });
    expect(res.statusCode).toBe(401);
  });
});

describe('errors from Fastify and plugins are mapped by meaning', () => {
  const fastifyError = (statusCode: number, message: string, code = 'FST_ERR_SOMETHING'): FastifyError =>
    Object.assign(new Error(message), { statusCode, code }) as FastifyError;

  it('maps statuses to the code that means the same, and others to CLIENT_ERROR with their own status', () => {
    expect(toGatewayError(fastifyError(400, 'bad'))).toMatchObject({ code: 'VALIDATION_FAILED', status: 400 });
    expect(toGatewayError(fastifyError(401, 'who'))).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    expect(toGatewayError(fastifyError(503, 'closing'))).toMatchObject({ code: 'SERVICE_UNAVAILABLE', status: 503 });
    // A plugin's 403 is not an egress refusal, a 409 not an existing account.
    expect(toGatewayError(fastifyError(403, 'nope'))).toMatchObject({ code: 'CLIENT_ERROR', status: 403, message: 'nope' });
    expect(toGatewayError(fastifyError(409, 'conflict'))).toMatchObject({ code: 'CLIENT_ERROR', status: 409 });
    expect(toGatewayError(fastifyError(431, ''))).toMatchObject({ code: 'CLIENT_ERROR', status: 431, message: 'Request Header Fields Too Large' });
  });

  it('keeps GatewayErrors, and turns anything else into a masked INTERNAL_ERROR', () => {
    const own = new GatewayError('MAILBOX_EXISTS', 'A mailbox Archive already exists');
    expect(toGatewayError(own)).toBe(own);
    const bug = toGatewayError(new TypeError("Cannot read properties of undefined (reading 'uid')"));
    expect(bug).toMatchObject({ code: 'INTERNAL_ERROR', status: 500 });
    expect(bug.message).not.toContain('uid');
  });

  it('names the limit for a body that is too large and the type expected for a wrong one', () => {
    expect(toGatewayError(fastifyError(413, 'too large', 'FST_ERR_CTP_BODY_TOO_LARGE'), { consumes: ['message/rfc822'], maxBytes: 1024 }).message).toContain(
      '1024 bytes',
    );
    expect(
      toGatewayError(fastifyError(415, 'Unsupported Media Type', 'FST_ERR_CTP_INVALID_MEDIA_TYPE'), { consumes: ['message/rfc822'], sent: 'text/csv' }).message,
    ).toBe('This endpoint takes a body of type message/rfc822, not text/csv');
  });
});

describe('every route declares who may call it', () => {
  it('refuses to start with a /v1 route that declares no access', async () => {
    const app = Fastify();
    requireDeclaredAccess(app);
    app.get('/health', async () => 'ok');
    expect(() => app.get('/v1/accounts/:account/forgotten', async () => 'oops')).toThrow(/GET \/v1\/accounts\/:account\/forgotten declares no access/);
    app.get('/v1/accounts/:account/declared', { config: { access: 'read' } }, async () => 'ok');
    await app.ready();
    await app.close();
  });
});
