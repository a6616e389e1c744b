/**
 * The outbox survives `kill -9` (API.md, Sending): a gateway process killed in the middle of DATA
 * (its SMTP server went silent: the one fault here the real MTA cannot show, so a fake server shows
 * it, then relays to the real Postfix) leaves the message queued, and the next process sends it —
 * started again on the same DATA_DIR, or any other process on the same Redis (it takes the job over
 * once the dead one stops claiming it). With Redis, an Idempotency-Key holds across processes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSilentAfterDataSmtp, type SilentSmtpServer } from '../support/fake-smtp.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { canRunMta, startMta, type TestMta } from '../support/mta.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot } = testServers();

/** What the gateway answered, as these tests read it. */
type Json = Record<string, any> | null; // eslint-disable-line @typescript-eslint/no-explicit-any

let mta: TestMta;
let redis: RedisServer;
let sender: DovecotUser;
let recipient: DovecotUser;
const processes: GatewayProcess[] = [];
const dirs: string[] = [];

async function json(base: string, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Json; headers: Headers }> {
  const res = await fetch(`${base}${url}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

async function start(env: Record<string, string>): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess({ SESSION_SLOT_TTL_MS: '3000', ...env });
  processes.push(gateway);
  return gateway;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms; maillog:\n${await mta.log()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Creates the sender's account on `base` with SMTP at the fake server, sends, and waits until the fake has the message mid-DATA. */
async function sendIntoSilence(base: string, fake: SilentSmtpServer, accountId: string, subject: string): Promise<{ queueId: string; messageId: string }> {
  const account = {
    id: accountId,
    protocol: 'imap',
    host: dovecot.host,
    port: dovecot.imapPort,
    security: 'none',
    username: sender.username,
    password: sender.password,
    email: mta.address(sender.username),
    smtp: { host: fake.host, port: fake.port, security: 'none' },
  };
  const created = await json(base, 'POST', '/v1/accounts', account);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const before = fake.dataStarted;
  const sent = await json(base, 'POST', `/v1/accounts/${accountId}/send`, { to: [{ address: mta.address(recipient.username) }], subject, text: 'survives kill -9' });
  expect(sent.status, JSON.stringify(sent.body)).toBe(202);
  await until('the fake SMTP server reaching DATA', async () => (fake.dataStarted > before ? true : undefined));
  return sent.body as { queueId: string; messageId: string };
}

async function deliveredOnce(messageId: string): Promise<void> {
  // Read straight from Dovecot's INBOX through a gateway-independent check: doveadm search by header.
  await until('the message in the recipient INBOX', async () => {
    const found = await dovecot.doveadm(['search', '-u', recipient.username, 'mailbox', 'INBOX', 'header', 'Message-ID', messageId]).catch(() => '');
    return found.trim().split('\n').filter(Boolean).length >= 1 ? true : undefined;
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const found = await dovecot.doveadm(['search', '-u', recipient.username, 'mailbox', 'INBOX', 'header', 'Message-ID', messageId]);
  expect(found.trim().split('\n').filter(Boolean)).toHaveLength(1);
}

describe.skipIf(!canRunMta)('the outbox across kill -9', () => {
  beforeAll(async () => {
    [sender, recipient] = await Promise.all([dovecot.createUser('restart-from'), dovecot.createUser('restart-to')]);
    [mta, redis] = await Promise.all([startMta({ dovecot, users: [sender, recipient] }), startRedis()]);
  });

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await mta?.stop();
    await redis?.stop();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('DATA_DIR: a process killed mid-DATA sends the message after it starts again, once', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-outbox-restart-'));
    dirs.push(dataDir);
    const fake = await startSilentAfterDataSmtp();
    try {
      const env = { DATA_DIR: dataDir, UPSTREAM_TIMEOUT_MS: '60000' };
      const first = await start(env);
      const { queueId, messageId } = await sendIntoSilence(first.base, fake, 'restart-file', 'file restart');
      await first.kill();
      fake.relayTo({ host: mta.host, port: mta.port });

      const second = await start(env);
      const entry = await until('the entry sent', async () => {
        const res = await json(second.base, 'GET', `/v1/accounts/restart-file/outbox/${queueId}`);
        return res.body?.status === 'sent' && res.body.sentCopy !== 'pending' ? res.body : undefined;
      });
      // The killed attempt counts: this is the second.
      expect(entry).toMatchObject({ status: 'sent', attempts: 2, sentCopy: 'saved' });
      await deliveredOnce(messageId);
    } finally {
      await fake.close();
    }
  });

  it('Redis: another process takes the job of a killed one over and sends it; an Idempotency-Key holds across processes', async () => {
    const fake = await startSilentAfterDataSmtp();
    try {
      const env = { REDIS_URL: redis.url, SECRET_KEY: randomBytes(32).toString('hex'), UPSTREAM_TIMEOUT_MS: '60000' };
      const dataDirs = await Promise.all([0, 1].map(() => mkdtemp(path.join(os.tmpdir(), 'mailgw-outbox-redis-'))));
      dirs.push(...dataDirs);
      const first = await start({ ...env, DATA_DIR: dataDirs[0]! });
      const { queueId, messageId } = await sendIntoSilence(first.base, fake, 'restart-redis', 'redis takeover');
      // Started once the first holds the job, so the job is certainly the killed process's.
      const other = await start({ ...env, DATA_DIR: dataDirs[1]! });
      await first.kill();
      fake.relayTo({ host: mta.host, port: mta.port });
      const entry = await until('the entry sent by the other process', async () => {
        const res = await json(other.base, 'GET', `/v1/accounts/restart-redis/outbox/${queueId}`);
        return res.body?.status === 'sent' && res.body.sentCopy !== 'pending' ? res.body : undefined;
      }, 30_000);
      expect(entry).toMatchObject({ status: 'sent', attempts: 2, sentCopy: 'saved' });
      await deliveredOnce(messageId);

      const survivor = await start({ ...env, DATA_DIR: dataDirs[0]! });
      const key = { 'idempotency-key': `restart-${queueId}` };
      const body = { to: [{ address: mta.address(recipient.username) }], subject: 'keyed', text: 'x' };
      const keyed = await json(survivor.base, 'POST', '/v1/accounts/restart-redis/send', body, key);
      expect(keyed.status).toBe(202);
      const replay = await json(other.base, 'POST', '/v1/accounts/restart-redis/send', body, key);
      expect(replay.status).toBe(202);
      expect(replay.body).toEqual(keyed.body);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      await deliveredOnce(keyed.body!.messageId);
    } finally {
      await fake.close();
    }
  });
});
