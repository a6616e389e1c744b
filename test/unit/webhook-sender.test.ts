/**
 * One delivery attempt against real local HTTP receivers: what a receiver gets, and what the sender
 * makes of each kind of answer (or of none).
 */
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { createEgressPolicy } from '../../src/net/egress.js';
import { WebhookAgents, sendWebhook } from '../../src/webhooks/sender.js';
import { newWebhookSecret, signWebhook } from '../../src/webhooks/signing.js';
import { closeReceivers, receiver } from '../support/webhook-receiver.js';

afterEach(closeReceivers);

const loopback = createEgressPolicy(['127.0.0.1/32']);
const body = JSON.stringify({ id: '1-0', type: 'message.new', account: 'alice' });

describe('webhook delivery attempt', () => {
  it('posts the signed JSON, which the receiver verifies, and counts a 2xx as delivered', async () => {
    const { port, received } = await receiver((_req, res) => res.writeHead(204).end());
    const secret = newWebhookSecret();
    const outcome = await sendWebhook(`http://127.0.0.1:${port}/hooks/mail?x=1`, body, { ...signWebhook(secret, '1-0', Date.now() / 1000, body) }, { egress: loopback });
    expect(outcome).toMatchObject({ ok: true, status: 204, gone: false, error: null });
    expect(received).toHaveLength(1);
    const [got] = received;
    expect(got!.url).toBe('/hooks/mail?x=1');
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.headers.host).toBe(`127.0.0.1:${port}`);
    const headers = { 'webhook-id': String(got!.headers['webhook-id']), 'webhook-timestamp': String(got!.headers['webhook-timestamp']), 'webhook-signature': String(got!.headers['webhook-signature']) };
    expect(new Webhook(secret).verify(got!.body, headers)).toEqual(JSON.parse(body));
  });

  it('reports a refusal with its status and Retry-After, and a 410 as gone', async () => {
    const busy = await receiver((_req, res) => res.writeHead(503, { 'retry-after': '120' }).end('later'));
    expect(await sendWebhook(`http://127.0.0.1:${busy.port}/`, body, {}, { egress: loopback })).toMatchObject({ ok: false, status: 503, retryAfterMs: 120_000, gone: false, error: 'HTTP 503' });
    const gone = await receiver((_req, res) => res.writeHead(410).end());
    expect(await sendWebhook(`http://127.0.0.1:${gone.port}/`, body, {}, { egress: loopback })).toMatchObject({ ok: false, status: 410, gone: true });
  });

  it('does not follow a redirect', async () => {
    const elsewhere = await receiver((_req, res) => res.writeHead(200).end());
    const redirecting = await receiver((_req, res) => res.writeHead(307, { location: `http://127.0.0.1:${elsewhere.port}/` }).end());
    const outcome = await sendWebhook(`http://127.0.0.1:${redirecting.port}/`, body, {}, { egress: loopback });
    expect(outcome).toMatchObject({ ok: false, status: 307, error: 'HTTP 307: redirects are not followed' });
    expect(elsewhere.received).toHaveLength(0);
  });

  it('gives up on a receiver that does not answer in time', async () => {
    const silent = await receiver(() => undefined);
    const outcome = await sendWebhook(`http://127.0.0.1:${silent.port}/`, body, {}, { egress: loopback, timeoutMs: 300 });
    expect(outcome).toMatchObject({ ok: false, status: null, error: 'no answer within 300 ms' });
    expect(outcome.durationMs).toBeLessThan(5_000);
  });

  it('reads no more than a few kilobytes of an answer, however large', async () => {
    let written = 0;
    const flood = await receiver((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const more = (): void => {
        while (written < 64 * 1024 * 1024 && res.write(chunk)) written += chunk.length;
      };
      res.on('drain', more);
      more();
    });
    const outcome = await sendWebhook(`http://127.0.0.1:${flood.port}/`, body, {}, { egress: loopback, maxResponseBytes: 4096 });
    expect(outcome).toMatchObject({ ok: true, status: 200 });
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it('checks the host at each attempt and dials the address it checked, naming the host only in Host', async () => {
    const { port, received } = await receiver((_req, res) => res.writeHead(200).end());
    // A name the system resolver does not know: only the policy's lookup answers it.
    const lookup = async (host: string) => (host === 'hooks.internal.test' ? [{ address: '127.0.0.1', family: 4 }] : []);
    const admitted = createEgressPolicy(['hooks.internal.test'], { lookup });
    expect(await sendWebhook(`http://hooks.internal.test:${port}/in`, body, {}, { egress: admitted })).toMatchObject({ ok: true });
    expect(received[0]!.headers.host).toBe(`hooks.internal.test:${port}`);
    // Not admitted: nothing is sent.
    const closed = createEgressPolicy([], { lookup });
    const refused = await sendWebhook(`http://hooks.internal.test:${port}/in`, body, {}, { egress: closed });
    expect(refused).toMatchObject({ ok: false, status: null });
    expect(refused.error).toMatch(/egress policy/);
    expect(received).toHaveLength(1);
  });

  it('sends plain http: only to a host the operator admitted', async () => {
    const lookup = async () => [{ address: '203.0.113.9', family: 4 }];
    const policy = createEgressPolicy(['203.0.113.0/24'], { lookup });
    const open = createEgressPolicy([], { lookup: async () => [{ address: '8.8.8.8', family: 4 }] });
    expect((await sendWebhook('http://receiver.example/hook', body, {}, { egress: open })).error).toMatch(/plain http: is allowed only to hosts admitted by EGRESS_ALLOW/);
    // Admitted: it is dialled (and, there being nobody at that documentation address, fails to connect or times out).
    const attempt = await sendWebhook('http://receiver.example:9/hook', body, {}, { egress: policy, timeoutMs: 200 });
    expect(attempt.error).not.toMatch(/plain http/);
  });

  it('reuses a kept-alive connection to the address it checked, and only with the agents given', async () => {
    const ports: number[] = [];
    const { port } = await receiver((req, res) => {
      ports.push(req.socket.remotePort ?? 0);
      res.writeHead(204).end();
    });
    const agents = new WebhookAgents();
    try {
      for (let i = 0; i < 3; i++) expect((await sendWebhook(`http://127.0.0.1:${port}/`, body, {}, { egress: loopback, agents })).ok).toBe(true);
      expect(new Set(ports).size).toBe(1);
      for (let i = 0; i < 2; i++) expect((await sendWebhook(`http://127.0.0.1:${port}/`, body, {}, { egress: loopback })).ok).toBe(true);
      expect(new Set(ports).size).toBe(3);
    } finally {
      agents.close();
    }
  });
});
