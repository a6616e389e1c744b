/**
 * Webhooks end to end, with gateway processes, real Dovecot, a real Redis of this file's own (the
 * webhook keys are fixed, other files must not see them) and real receivers on loopback:
 * - a receiver down and the gateway SIGKILLed, then both back: every event delivered, in order,
 *   none missing (embedded, and with Redis);
 * - two gateway processes on one Redis: each event delivered once, in order per account;
 * - a change by another mail client arrives signed (standardwebhooks verifies it), `test` sends a
 *   `webhook.test` and records it; a redirect is not followed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ImapFlow } from 'imapflow';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compareEventIds } from '../../src/events/log/event-id.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { directImapClient } from '../support/imap-client.js';
import { textMessage } from '../support/messages.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { createAccountOver } from '../support/restart-scenario.js';
import { testServers } from '../support/servers.js';
import { closeReceivers, receiver, type Received, type Receiver } from '../support/webhook-receiver.js';

const { dovecot } = testServers();

interface Delivered {
  id: string;
  type: string;
  account: string;
  mailbox: string | null;
  message?: { id?: string; subject?: string };
}

const body = (r: Received): Delivered => JSON.parse(r.body) as Delivered;
const subjects = (received: Received[], account: string): string[] =>
  received.map(body).filter((e) => e.type === 'message.new' && e.account === account).map((e) => e.message?.subject ?? '');

async function post<T>(base: string, url: string, payload: unknown, status = 201): Promise<T> {
  const res = await fetch(`${base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  if (res.status !== status) throw new Error(`POST ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function createWebhook(base: string, url: string, accounts?: string[]): Promise<{ id: string; secret: string }> {
  return post(base, '/v1/webhooks', { url, events: ['message.new'], ...(accounts ? { accounts } : {}) });
}

/** Appends probes to INBOX until the receiver has one: the watcher's first look is done and deliveries flow. */
async function untilDelivering(target: Receiver, other: ImapFlow, account: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let n = 1; ; n++) {
    await other.append('INBOX', textMessage({ subject: `Probe ${n}` }));
    const start = Date.now();
    while (Date.now() - start < 1_500) {
      if (subjects(target.received, account).some((s) => s.startsWith('Probe '))) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (Date.now() > deadline) throw new Error(`no probe delivered within ${timeoutMs} ms`);
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let redis: RedisServer;
const gateways: GatewayProcess[] = [];
const dirs: string[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await closeReceivers();
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});
afterAll(async () => {
  await redis?.stop();
});

async function environment(withRedis: boolean): Promise<Record<string, string>> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-webhooks-'));
  dirs.push(dataDir);
  return {
    DATA_DIR: dataDir,
    SECRET_KEY: randomBytes(32).toString('hex'),
    SESSION_SLOT_TTL_MS: '3000',
    EVENTS_POLL_INTERVAL_MS: '500',
    EVENTS_STREAM_POLL_INTERVAL_MS: '500',
    WEBHOOK_REFRESH_INTERVAL_MS: '200',
    ...(withRedis ? { REDIS_URL: redis.url } : {}),
  };
}

async function gatewayWith(env: Record<string, string>): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(env);
  gateways.push(gateway);
  return gateway;
}

for (const withRedis of [false, true]) {
  describe(`webhooks ${withRedis ? 'with Redis' : 'embedded (DATA_DIR)'}`, () => {
    it('a receiver down and the gateway killed, then both back: every event delivered, in order, none missing', { timeout: 90_000 }, async () => {
      const env = await environment(withRedis);
      const user = await dovecot.createUser('webhook');
      const other = directImapClient(dovecot, user);
      await other.connect();
      let gateway = await gatewayWith(env);
      try {
        let target = await receiver((_req, res) => res.writeHead(204).end());
        const port = target.port;
        const account = await createAccountOver(gateway.base, dovecot, user);
        const hook = await createWebhook(gateway.base, target.url);
        await untilDelivering(target, other, account);

        // The receiver goes away; changes come in; the gateway is killed mid-retry.
        await target.close();
        for (const n of [1, 2, 3]) await other.append('INBOX', textMessage({ subject: `During ${n}` }));
        const deliveries = async (): Promise<Array<{ status: string }>> =>
          ((await (await fetch(`${gateway.base}/v1/webhooks/${hook.id}/deliveries`)).json()) as { deliveries: Array<{ status: string }> }).deliveries;
        const deadline = Date.now() + 20_000;
        while (!(await deliveries()).some((d) => d.status === 'retrying')) {
          if (Date.now() > deadline) throw new Error('no failed attempt recorded while the receiver was down');
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        // What an operator sees meanwhile: attempts failing, and events waiting for this webhook.
        const metrics = await (await fetch(`${gateway.base}/metrics`)).text();
        expect(metrics).toMatch(/^mailgw_webhook_deliveries_total\{status="retrying"\} [1-9]/m);
        const backlog = new RegExp(`^mailgw_webhook_backlog_events\\{webhook="${hook.id}"\\} (\\d+)`, 'm').exec(metrics);
        expect(Number(backlog?.[1])).toBeGreaterThanOrEqual(1);
        const oldest = new RegExp(`^mailgw_webhook_oldest_pending_seconds\\{webhook="${hook.id}"\\} ([\\d.e+-]+)`, 'm').exec(metrics);
        expect(Number(oldest?.[1])).toBeGreaterThan(0);
        await gateway.kill();
        for (const n of [4, 5]) await other.append('INBOX', textMessage({ subject: `During ${n}` }));

        // Both come back: everything missed arrives, in order, each once.
        target = await receiver((_req, res) => res.writeHead(204).end(), port);
        gateway = await gatewayWith(env);
        const expected = [1, 2, 3, 4, 5].map((n) => `During ${n}`);
        await until(() => expected.every((s) => subjects(target.received, account).includes(s)), 'the events missed', 60_000);
        await other.append('INBOX', textMessage({ subject: 'After' }));
        await until(() => subjects(target.received, account).includes('After'), 'a live event after the catch-up');
        expect(subjects(target.received, account)).toEqual([...expected, 'After']);
        const ids = target.received.map((r) => r.headers['webhook-id'] as string);
        expect(ids.every((id, i) => i === 0 || compareEventIds(ids[i - 1]!, id) < 0)).toBe(true);
        const verifier = new Webhook(hook.secret.slice('whsec_'.length));
        for (const got of target.received) expect(verifier.verify(got.body, got.headers as Record<string, string>)).toMatchObject({ id: got.headers['webhook-id'] });
      } catch (err) {
        (err as Error).message += `\n--- gateway output ---\n${gateway.output()}`;
        throw err;
      } finally {
        await other.logout().catch(() => undefined);
      }
    });
  });
}

describe('webhooks with two gateway processes on one Redis', () => {
  it('deliver each event once, in order per account, whichever process watches it', { timeout: 90_000 }, async () => {
    const env = await environment(true);
    const [first, second] = [await gatewayWith(env), await gatewayWith({ ...env, DATA_DIR: (await environment(true)).DATA_DIR! })];
    const users = [await dovecot.createUser('webhook-a'), await dovecot.createUser('webhook-b')];
    const clients = users.map((user) => directImapClient(dovecot, user));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const target = await receiver((_req, res) => res.writeHead(200).end());
      const accounts = [await createAccountOver(first.base, dovecot, users[0]!), await createAccountOver(second.base, dovecot, users[1]!)];
      await createWebhook(second.base, target.url);
      for (const [i, account] of accounts.entries()) await untilDelivering(target, clients[i]!, account);
      const expected = [1, 2, 3, 4, 5, 6].map((n) => `Burst ${n}`);
      await Promise.all(
        clients.map(async (client) => {
          for (const subject of expected) await client.append('INBOX', textMessage({ subject }));
        }),
      );
      await until(() => accounts.every((account) => subjects(target.received, account).filter((s) => s.startsWith('Burst')).length >= expected.length), 'both bursts');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      for (const account of accounts) {
        expect(subjects(target.received, account).filter((s) => s.startsWith('Burst'))).toEqual(expected);
      }
      const ids = target.received.map((r) => `${body(r).account} ${r.headers['webhook-id'] as string}`);
      expect(new Set(ids).size).toBe(ids.length);
    } catch (err) {
      (err as Error).message += `\n--- first ---\n${first.output()}\n--- second ---\n${second.output()}`;
      throw err;
    } finally {
      await Promise.all(clients.map((c) => c.logout().catch(() => undefined)));
    }
  });
});

describe('webhooks, what a receiver sees', () => {
  it('signs a change by another client, sends a test event and records it, and does not follow a redirect', { timeout: 60_000 }, async () => {
    const env = await environment(false);
    const gateway = await gatewayWith(env);
    const user = await dovecot.createUser('webhook-see');
    const other = directImapClient(dovecot, user);
    await other.connect();
    try {
      const elsewhere = await receiver((_req, res) => res.writeHead(200).end());
      const target = await receiver((req, res) => {
        if (req.url?.includes('redirect')) return void res.writeHead(307, { location: elsewhere.url }).end();
        res.writeHead(200).end();
      });
      const account = await createAccountOver(gateway.base, dovecot, user);
      const hook = await createWebhook(gateway.base, target.url, [account]);
      await untilDelivering(target, other, account);
      const probe = target.received.find((r) => body(r).type === 'message.new')!;
      expect(probe.headers['content-type']).toBe('application/json');
      expect(body(probe)).toMatchObject({ type: 'message.new', account, mailbox: 'INBOX', message: { id: expect.any(String) } });
      // The id in the event is one the REST routes accept.
      const read = await fetch(`${gateway.base}/v1/accounts/${account}/mailboxes/INBOX/messages/${body(probe).message!.id!}`);
      expect(read.status).toBe(200);

      const { eventId } = await post<{ eventId: string }>(gateway.base, `/v1/webhooks/${hook.id}/test`, {}, 202);
      await until(() => target.received.some((r) => r.headers['webhook-id'] === eventId), 'the test event');
      const test = target.received.find((r) => r.headers['webhook-id'] === eventId)!;
      expect(body(test)).toMatchObject({ id: eventId, type: 'webhook.test', account: null });
      new Webhook(hook.secret.slice('whsec_'.length)).verify(test.body, test.headers as Record<string, string>);
      const recorded = async (): Promise<Array<{ eventId: string; status: string; responseStatus: number | null; error: string | null }>> =>
        ((await (await fetch(`${gateway.base}/v1/webhooks/${hook.id}/deliveries`)).json()) as { deliveries: Array<{ eventId: string; status: string; responseStatus: number | null; error: string | null }> }).deliveries;
      const deadline = Date.now() + 5_000;
      while (!(await recorded()).some((d) => d.eventId === eventId)) {
        if (Date.now() > deadline) throw new Error('test delivery not recorded');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect((await recorded()).find((d) => d.eventId === eventId)).toMatchObject({ status: 'delivered', responseStatus: 200 });

      // A receiver that redirects: the attempt fails (retried later), nothing reaches the other URL.
      const patched = await fetch(`${gateway.base}/v1/webhooks/${hook.id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: `${target.url}?redirect=1` }),
      });
      expect(patched.status).toBe(200);
      await other.append('INBOX', textMessage({ subject: 'Redirected' }));
      const deadline2 = Date.now() + 20_000;
      while (!(await recorded()).some((d) => d.status === 'retrying' && d.responseStatus === 307)) {
        if (Date.now() > deadline2) throw new Error(`no 307 attempt recorded: ${JSON.stringify(await recorded())}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect((await recorded()).find((d) => d.responseStatus === 307)?.error).toMatch(/redirect/);
      expect(elsewhere.received).toHaveLength(0);
    } catch (err) {
      (err as Error).message += `\n--- gateway output ---\n${gateway.output()}`;
      throw err;
    } finally {
      await other.logout().catch(() => undefined);
    }
  });
});
