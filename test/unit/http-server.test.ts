/**
 * What the HTTP server itself refuses, over a real socket where it matters (inject bypasses Node's
 * parser and timers): problem documents for a bad URL, a long parameter, headers too large and a
 * request Node cannot parse; a bound on a body that never finishes and on headers that never end.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.js';

/** Writes `data` on a fresh connection and collects what comes back until the server closes it (or `waitMs`). */
async function rawExchange(port: number, data: string, waitMs = 10_000): Promise<{ text: string; closedAfterMs: number }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const started = performance.now();
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(data);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, waitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const closedAfterMs = performance.now() - started;
  socket.destroy();
  return { text, closedAfterMs };
}

/** The status, headers and JSON body of a raw HTTP/1.1 answer. */
function parseAnswer(text: string): { status: number; headers: Record<string, string>; body: Record<string, unknown> } {
  const end = text.indexOf('\r\n\r\n');
  expect(end, text).toBeGreaterThan(0);
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(text.slice(end + 4)) as Record<string, unknown> };
}

function expectProblem(answer: ReturnType<typeof parseAnswer>, status: number, code: string): void {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/problem+json; charset=utf-8');
  expect(answer.body).toMatchObject({ status, code, type: expect.stringMatching(/^urn:mailgw:problem:/), requestId: expect.any(String) });
  expect(String(answer.body.detail).length).toBeGreaterThan(10);
  expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(JSON.stringify(answer.body)));
}

describe("Fastify's own refusals are problem documents", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => gw.close());

  it('is 400 VALIDATION_FAILED for a path that is not UTF-8 once percent-decoded, saying how to encode it', async () => {
    for (const url of ['/v1/accounts/%FF', '/v1/accounts/alice/mailboxes/%C3%28/messages', '/v1/accounts/%E0%A4%A']) {
      const res = await gw.app.inject({ url });
      expect(res.statusCode, url).toBe(400);
      expect(res.headers['content-type'], url).toBe('application/problem+json; charset=utf-8');
      expect(res.json(), url).toMatchObject({ code: 'VALIDATION_FAILED', status: 400 });
      expect(res.json().detail, url).toMatch(/UTF-8/);
      expect(res.headers['x-request-id']).toBe(res.json().requestId);
    }
  });

  it('is 414 CLIENT_ERROR with the exact status for a path parameter over the length limit', async () => {
    const res = await gw.app.inject({ url: `/v1/accounts/alice/mailboxes/${'a'.repeat(2000)}/messages` });
    expect(res.statusCode).toBe(414);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.json()).toMatchObject({ code: 'CLIENT_ERROR', status: 414, title: 'URI Too Long' });
    expect(res.json().detail).toContain('1024');
  });

  it('is 400 VALIDATION_FAILED for a JSON body that does not parse', async () => {
    const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', headers: { 'content-type': 'application/json' }, payload: '{"id":' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(res.json().detail).toMatch(/^body is not valid JSON/);
  });
});

describe('the listening server', { timeout: 15_000 }, () => {
  let gw: TestGateway;
  let port: number;
  beforeAll(async () => {
    gw = await startGateway({ HTTP_REQUEST_TIMEOUT_MS: '1000', HTTP_HEADERS_TIMEOUT_MS: '600' });
    await gw.app.listen({ host: '127.0.0.1', port: 0 });
    port = (gw.app.server.address() as net.AddressInfo).port;
  });
  afterAll(async () => gw.close());

  it('answers 431 CLIENT_ERROR as a problem document for headers larger than Node accepts, and closes', async () => {
    const { text } = await rawExchange(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const answer = parseAnswer(text);
    expectProblem(answer, 431, 'CLIENT_ERROR');
    expect(answer.body.title).toBe('Request Header Fields Too Large');
    expect(answer.headers.connection).toBe('close');
  });

  it('answers 400 CLIENT_ERROR as a problem document for a request Node cannot parse', async () => {
    const answer = parseAnswer((await rawExchange(port, 'THIS IS NOT HTTP\r\n\r\n')).text);
    expectProblem(answer, 400, 'CLIENT_ERROR');
  });

  it('answers a body that never finishes with 408 within the request timeout, and closes the connection', async () => {
    const { text, closedAfterMs } = await rawExchange(
      port,
      'POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id":"half',
    );
    expectProblem(parseAnswer(text), 408, 'CLIENT_ERROR');
    // The bound (1 s) plus the server's checking interval, far below the 10 s the exchange waits.
    expect(closedAfterMs).toBeLessThan(3_000);
    expect(closedAfterMs).toBeGreaterThanOrEqual(900);
  });

  it('closes a connection whose headers never end within the headers timeout', async () => {
    const { text, closedAfterMs } = await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a');
    expectProblem(parseAnswer(text), 408, 'CLIENT_ERROR');
    expect(closedAfterMs).toBeLessThan(2_500);
  });

  it('still serves a request that arrives in time', async () => {
    const { text } = await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
  });
});
