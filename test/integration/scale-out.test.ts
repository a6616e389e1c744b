import { imapConnectionsOf } from '../support/imap-client.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers } from '../support/servers.js';
import { createImapAccount, createPop3Account, startGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';
import { startLatencyProxy } from '../support/latency-proxy.js';

const { dovecot } = testServers();
const root = path.resolve(import.meta.dirname, '../..');

/** Live IMAP connections of `username` as Dovecot counts them. */
async function connectionsOf(username: string): Promise<number> {
  return imapConnectionsOf(dovecot, username);
}

describe('several gateway processes on one Redis', () => {
  let redis: RedisServer;
  const secretKey = randomBytes(32).toString('hex');

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('hold the per-account session cap together, and serve every request', async () => {
    const env = { REDIS_URL: redis.url, SECRET_KEY: secretKey, IMAP_MAX_SESSIONS_PER_ACCOUNT: '2', POOL_ACQUIRE_TIMEOUT_MS: '15000' };
    const a = await startGateway(env);
    const b = await startGateway(env);
    try {
      const user = await dovecot.createUser('cap');
      await dovecot.seedMaildir(user.username, Array.from({ length: 30 }, (_, i) => textMessage({ subject: `C${i}` })));
      await dovecot.seedMaildir(user.username, [textMessage({ subject: 'elsewhere' })], { mailbox: 'Other' });
      const account = await createImapAccount(a.app, dovecot, user);

      let maxSeen = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          maxSeen = Math.max(maxSeen, await connectionsOf(user.username));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const requests = [];
      for (let i = 0; i < 12; i++) {
        const gw = i % 2 === 0 ? a : b;
        const mailbox = i % 3 === 0 ? 'Other' : 'INBOX';
        requests.push(gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${mailbox}/messages?limit=5` }));
      }
      const results = await Promise.all(requests);
      sampling = false;
      await sampler;
      expect(results.map((r) => r.statusCode)).toEqual(results.map(() => 200));
      expect(maxSeen).toBeGreaterThan(0);
      expect(maxSeen).toBeLessThanOrEqual(2);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('has a process free its idle session at once when another one waits for the slot, not at its next renewal', async () => {
    // One slot; renewals every 10 s (a third of the default TTL), idle sessions kept for minutes: the
    // waiter gets the slot within its 3 s only because the holder hears that it waits.
    const env = { REDIS_URL: redis.url, SECRET_KEY: secretKey, IMAP_MAX_SESSIONS_PER_ACCOUNT: '1', SESSION_SLOT_TTL_MS: '30000', POOL_ACQUIRE_TIMEOUT_MS: '3000' };
    const a = await startGateway(env);
    const b = await startGateway(env);
    try {
      const user = await dovecot.createUser('wanted');
      await dovecot.seedMaildir(user.username, [textMessage({ subject: 'W' })]);
      const account = await createImapAccount(a.app, dovecot, user);
      expect((await a.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` })).statusCode).toBe(200);
      expect(await connectionsOf(user.username)).toBe(1);
      const res = await b.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().messages.map((m: { subject: string }) => m.subject)).toEqual(['W']);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('takes over the sessions of a gateway process that was killed, once its slots expire', async () => {
    const user = await dovecot.createUser('crash');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Survivor' })]);
    const env = {
      REDIS_URL: redis.url,
      SECRET_KEY: secretKey,
      IMAP_MAX_SESSIONS_PER_ACCOUNT: '1',
      SESSION_SLOT_TTL_MS: '3000',
      POOL_ACQUIRE_TIMEOUT_MS: '15000',
      EGRESS_ALLOW: '127.0.0.1/32',
      LOG_LEVEL: 'silent',
    };
    const port = await freePort();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-child-'));
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: root,
      env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir },
      stdio: 'ignore',
    });
    const survivor = await startGateway(env);
    try {
      const base = `http://127.0.0.1:${port}`;
      await expect.poll(() => fetch(`${base}/health`).then((r) => r.status, () => 0), { timeout: 20_000 }).toBe(200);
      const created = await fetch(`${base}/v1/accounts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ protocol: 'imap', host: dovecot.host, port: dovecot.imapPort, security: 'none', username: user.username, password: user.password }),
      });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      const listed = await fetch(`${base}/v1/accounts/${id}/mailboxes/INBOX/messages`);
      expect(listed.status).toBe(200); // the child now holds the account's only slot

      child.kill('SIGKILL');
      const res = await survivor.app.inject({ url: `/v1/accounts/${id}/mailboxes/INBOX/messages` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().messages[0].subject).toBe('Survivor');
    } finally {
      child.kill('SIGKILL');
      await survivor.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a process that waits for a slot another process holds busy', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('answers 503 POOL_EXHAUSTED once POOL_ACQUIRE_TIMEOUT_MS has passed, however often it retried for a slot', async () => {
    const user = await dovecot.createUser('slotwait');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'one' })]);
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'other' })], { mailbox: 'Other' });
    const env = { REDIS_URL: redis.url, SECRET_KEY: randomBytes(32).toString('hex'), IMAP_MAX_SESSIONS_PER_ACCOUNT: '1' };
    const holder = await startGateway(env);
    const waiter = await startGateway({ ...env, POOL_ACQUIRE_TIMEOUT_MS: '1500' });
    // The server's answers held back: a command keeps the account's only session (and slot) busy.
    const proxy = await startLatencyProxy({ host: dovecot.host, port: dovecot.imapPort });
    try {
      const account = await createImapAccount(holder.app, dovecot, user, { host: proxy.host, port: proxy.port });
      expect((await holder.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` })).statusCode).toBe(200);
      proxy.delayMs = 4000;
      const holding = holder.app.inject({ url: `/v1/accounts/${account}/mailboxes/Other/messages` });
      await proxy.clientSends(/ (LIST|STATUS|SELECT|NOOP) /);

      const started = Date.now();
      const listing = await waiter.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
      expect(listing.statusCode, listing.body).toBe(503);
      expect(listing.json().code).toBe('POOL_EXHAUSTED');
      expect(listing.headers['retry-after']).toBeDefined();
      // Retrying for a slot every 200 ms must not restart the wait: it ends near the configured 1.5 s.
      expect(Date.now() - started).toBeLessThan(6_000);
      proxy.delayMs = 0;
      expect((await holding).statusCode).toBe(200);
    } finally {
      proxy.delayMs = 0;
      await waiter.close();
      await holder.close();
      await proxy.close();
    }
  });
});

describe('POP3 across gateway processes', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('never opens two sessions on one maildrop at once, and serves every request', async () => {
    const env = { REDIS_URL: redis.url, SECRET_KEY: randomBytes(32).toString('hex'), POOL_ACQUIRE_TIMEOUT_MS: '20000' };
    const a = await startGateway(env);
    const b = await startGateway(env);
    try {
      const user = await dovecot.createUser('pop3cap');
      await dovecot.seedMaildir(user.username, Array.from({ length: 5 }, (_, i) => textMessage({ subject: `Q${i}` })));
      const url = `/v1/accounts/${await createPop3Account(a.app, dovecot, user)}/mailboxes/INBOX/messages`;

      let maxSeen = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const out = await dovecot.doveadm(['who', '-1']);
          const sessions = out.split('\n').filter((line) => line.split(/\s+/)[0] === user.username && /\bpop3\b/.test(line)).length;
          maxSeen = Math.max(maxSeen, sessions);
          await new Promise((r) => setTimeout(r, 30));
        }
      })();
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).app.inject({ url })));
      sampling = false;
      await sampler;
      expect(results.map((r) => r.statusCode)).toEqual(results.map(() => 200));
      expect(maxSeen).toBeLessThanOrEqual(1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
