import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster } from '../support/redis.js';
import { testServers } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();

let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
let a: TestGateway;
let b: TestGateway;

beforeAll(async () => {
  cluster = await startRedisCluster();
  const env = {
    REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','),
    SECRET_KEY: randomBytes(32).toString('hex'),
    IMAP_MAX_SESSIONS_PER_ACCOUNT: '2',
  };
  a = await startGateway(env);
  b = await startGateway(env);
}, 120_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  await cluster?.stop();
});

describe('on a three-master Redis Cluster', () => {
  it('stores accounts, shares validated caches and session slots, and purges an account everywhere', async () => {
    const user = await dovecot.createUser('cluster');
    await dovecot.seedMaildir(user.username, Array.from({ length: 4 }, (_, i) => textMessage({ subject: `K${i}`, body: `body ${i}` })));
    const account = await createImapAccount(a.app, dovecot, user);
    const url = `/v1/accounts/${account}/mailboxes/INBOX/messages`;

    expect((await b.app.inject({ url: `/v1/accounts/${account}` })).statusCode).toBe(200);
    const pageA = (await a.app.inject({ url })).json();
    const pageB = (await b.app.inject({ url })).json();
    expect(pageB).toEqual(pageA);
    const id = pageA.messages[0].id as string;
    const viaA = (await a.app.inject({ url: `${url}/${id}` })).json();
    const viaB = (await b.app.inject({ url: `${url}/${id}` })).json();
    expect(viaB.text).toBe(viaA.text);
    expect((await b.app.inject({ url: '/metrics' })).body).toMatch(/mailgw_cache_requests_total\{kind="message",result="hit"\} 1/);

    const ready = (await a.app.inject({ url: '/ready' })).json();
    expect(ready).toEqual({ status: 'ok', store: 'ok', cache: 'ok' });

    expect((await a.app.inject({ method: 'DELETE', url: `/v1/accounts/${account}` })).statusCode).toBe(204);
    expect((await a.app.inject({ url })).json().code).toBe('ACCOUNT_NOT_FOUND');
    // The other process reads the record again once its copy is ACCOUNT_RECORD_FRESH_MS (1 s) old.
    await expect.poll(async () => (await b.app.inject({ url })).json().code, { timeout: 3_000 }).toBe('ACCOUNT_NOT_FOUND');
  });
});
