/**
 * Rows (l) and (m): webhooks.
 *
 * (l) How soon a change made by another client is a webhook's 2xx, set against the same change's SSE
 * event on the same gateway (row (j)'s path) for the very same APPENDs: the webhook adds a delivery to
 * what SSE does. Both observers run in this process.
 *
 * (m) Throughput of one lane: 10,000 events queued for one webhook (written to the account's event
 * log in Redis while the webhook is disabled, then the webhook enabled), delivered to a receiver that
 * answers at once, against a bare loop in this process POSTing the same 10,000 signed bodies one after
 * another with fetch (keep-alive) to the same receiver.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisEventLog } from '../../src/events/log/redis-event-log.js';
import { signWebhook } from '../../src/webhooks/signing.js';
import { appendAt, changer, openEvents, pause, quantile, sampleSubject, sseArrival, untilReporting } from '../events.js';
import type { Gateway } from '../gateway.js';
import { check, ms, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_L = 'change → webhook 2xx, against the same change on SSE';
export const TITLE_M = '10,000 queued events → one receiver, against a bare signed fetch loop';

const WAIT_MS = 15_000;

/** A receiver in this process: answers 204 at once and notes when each delivery arrived. */
async function startReceiver(): Promise<{ url: string; arrivals: Map<string, number>; count: () => number; close: () => Promise<void> }> {
  const arrivals = new Map<string, number>();
  let count = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      count++;
      try {
        const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: { subject?: string }; n?: number };
        const key = event.message?.subject ?? (event.n !== undefined ? `n${event.n}` : undefined);
        if (key !== undefined && !arrivals.has(key)) arrivals.set(key, at);
      } catch {
        // not ours
      }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    arrivals,
    count: () => count,
    close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

async function api(gateway: Gateway, method: string, url: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${gateway.url}${url}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(5);
  }
}

export async function rowsLM(ctx: RowContext, gateway: Gateway): Promise<{ l: RowResult; m: RowResult }> {
  const { dovecot } = ctx.servers;
  const user = { username: `bench-webhooks-${randomBytes(3).toString('hex')}`, password: randomBytes(9).toString('base64url') };
  await dovecot.addUser(user.username, user.password);
  const account = user.username;
  const created = await gateway.createAccount(account, 'imap', user);
  if (created.status !== 201) throw new Error(`creating ${account}: ${created.status} ${created.body}`);
  const receiver = await startReceiver();
  const other = await changer(ctx.servers, user);
  const stream = await openEvents(`${gateway.url}/v1/accounts/${account}/events`);
  const webhook = await api(gateway, 'POST', '/v1/webhooks', { url: receiver.url, accounts: [account], events: ['message.new'] });
  const webhookId = webhook.id as string;
  const secret = webhook.secret as string;
  try {
    // (l)
    await untilReporting(stream, other, 60_000);
    const samples = ctx.options.quick ? 5 : 40;
    const sse: number[] = [];
    const hook: number[] = [];
    for (let i = 0; i < samples; i++) {
      const subject = sampleSubject(`l-${i}`);
      const startMs = await appendAt(other, 'INBOX', subject);
      const sseAt = await sseArrival(stream, subject, WAIT_MS);
      await until(() => receiver.arrivals.has(subject), WAIT_MS, `the webhook delivery of "${subject}"`);
      sse.push(sseAt - startMs);
      hook.push(receiver.arrivals.get(subject)! - startMs);
      await pause(600 + Math.random() * 400);
    }

    // (m): without the stream, so that only the deliveries run
    stream.close();
    const total = ctx.options.quick ? 2_000 : 10_000;
    await api(gateway, 'PATCH', `/v1/webhooks/${webhookId}`, { enabled: false });
    const redis = new Redis(ctx.servers.redis.url);
    const log = new RedisEventLog(redis, { retentionMs: 86_400_000 });
    try {
      for (let start = 0; start < total; start += 500) {
        const batch = Array.from({ length: Math.min(500, total - start) }, (_, k) => ({
          type: 'message.new' as const,
          mailbox: 'INBOX',
          fields: { n: start + k, message: { id: `bench-${start + k}`, subject: `m-${start + k}` } },
        }));
        await log.append(account, batch);
      }
    } finally {
      await log.close();
      redis.disconnect();
    }
    const before = receiver.count();
    const gatewayStart = performance.now();
    await api(gateway, 'PATCH', `/v1/webhooks/${webhookId}`, { enabled: true });
    await until(() => receiver.arrivals.has(`m-${total - 1}`), 600_000, `the last of ${total} queued deliveries`);
    const gatewaySeconds = (performance.now() - gatewayStart) / 1000;
    const delivered = receiver.count() - before;

    const bodies = Array.from({ length: total }, (_, n) => JSON.stringify({ id: `0-${n}`, type: 'message.new', n, message: { subject: `bare-${n}` } }));
    const bareStart = performance.now();
    for (const [n, body] of bodies.entries()) {
      const res = await fetch(receiver.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signWebhook(secret, `0-${n}`, Date.now() / 1000, body) },
        body,
      });
      await res.arrayBuffer();
    }
    const bareSeconds = (performance.now() - bareStart) / 1000;
    const gatewayRate = total / gatewaySeconds;
    const bareRate = total / bareSeconds;

    const p = (values: number[], q: number): number => quantile(values, q);
    return {
      l: {
        id: 'l',
        title: TITLE_L,
        status: 'measured',
        measured: `webhook 2xx: p50 ${ms(p(hook, 0.5))}, p99 ${ms(p(hook, 0.99))} (${samples} changes)`,
        baseline: `the same changes on SSE: p50 ${ms(p(sse, 0.5))}, p99 ${ms(p(sse, 0.99))}`,
        checks: [check('(l) webhook p50, ms (≤ 1.2 × SSE p50 + 5 ms)', p(hook, 0.5), '<=', Math.round((1.2 * p(sse, 0.5) + 5) * 10) / 10)],
        notes: [],
        raw: { webhookMs: hook, sseMs: sse },
      },
      m: {
        id: 'm',
        title: TITLE_M,
        status: 'measured',
        measured: `${Math.round(gatewayRate).toLocaleString('en-US')} deliveries/s (${total.toLocaleString('en-US')} in ${gatewaySeconds.toFixed(1)} s, ${delivered.toLocaleString('en-US')} requests)`,
        baseline: `bare signed fetch loop: ${Math.round(bareRate).toLocaleString('en-US')} POST/s`,
        checks: [check('(m) gateway deliveries/s / bare fetch loop', gatewayRate / bareRate, '>=', 0.5)],
        notes: [],
        raw: { total, gatewaySeconds, bareSeconds, delivered },
      },
    };
  } finally {
    stream.close();
    await other.logout().catch(() => undefined);
    await api(gateway, 'DELETE', `/v1/webhooks/${webhookId}`).catch(() => undefined);
    await gateway.deleteAccount(account);
    await receiver.close();
  }
}
