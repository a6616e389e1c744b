/**
 * OAuth2 accounts end to end (API.md, OAuth2 accounts): a Dovecot of this file's own that checks
 * XOAUTH2 / OAUTHBEARER logins by introspection against the test's OAuth2 provider
 * (test/support/oauth2-provider.ts), IMAP, POP3 and SMTP (a real Postfix whose SMTP AUTH asks that
 * Dovecot), refresh tokens, renewal, rotation, refusal, and one renewal across two processes.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../support/assertions.js';
import { startDovecot, type DovecotServer, type DovecotUser } from '../support/dovecot.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { canRunMta, startMta, type TestMta } from '../support/mta.js';
import { startXOAuth2Smtp } from '../support/fake-smtp.js';
import { freePort } from '../support/ports.js';
import { startOAuth2Provider, type OAuth2Provider } from '../support/oauth2-provider.js';
import type { OAuth2Login } from '../../src/mail/account.js';
import { startRedis, type RedisServer } from '../support/redis.js';

let provider: OAuth2Provider;
let dovecot: DovecotServer;
let redisServer: RedisServer;
let gw: TestGateway;
const users: DovecotUser[] = Array.from({ length: 12 }, (_, i) => ({ username: `oauth-${i}-${randomBytes(3).toString('hex')}`, password: randomBytes(9).toString('base64url') }));

beforeAll(async () => {
  provider = await startOAuth2Provider();
  [dovecot, redisServer] = await Promise.all([startDovecot({ users, oauth2IntrospectionUrl: provider.introspectionUrl, mta: true }), startRedis()]);
  gw = await startGateway();
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([dovecot?.stop(), redisServer?.stop(), provider?.stop()]);
});

interface Grant {
  clientId: string;
  refreshToken: string;
}

function grantFor(user: DovecotUser, options: { clientSecret?: string } = {}): Grant {
  const clientId = `client-${user.username}-${randomBytes(3).toString('hex')}`;
  return { clientId, refreshToken: provider.grant({ username: user.username, clientId, ...options }) };
}

function oauth2Body(grant: Grant, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { provider: 'custom', tokenUrl: provider.tokenUrl, clientId: grant.clientId, refreshToken: grant.refreshToken, scope: 'mail', ...extra };
}

async function createAccount(app: FastifyInstance, user: DovecotUser, grant: Grant, extra: Record<string, unknown> = {}): Promise<string> {
  const protocol = (extra.protocol as string | undefined) ?? 'imap';
  const res = await app.inject({
    method: 'POST',
    url: '/v1/accounts',
    payload: { protocol, host: '127.0.0.1', port: protocol === 'imap' ? dovecot.imapPort : dovecot.pop3Port, security: 'none', username: user.username, oauth2: oauth2Body(grant), ...extra },
  });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { id: string }).id;
}

const renewals = (grant: Grant): number => provider.tokenRequests.filter((r) => r.clientId === grant.clientId).length;

async function listing(app: FastifyInstance, id: string): Promise<{ statusCode: number; body: string }> {
  return app.inject({ method: 'GET', url: `/v1/accounts/${id}/mailboxes/INBOX/messages?limit=5` });
}

/** Ends every session the user has, so the gateway's next request logs in afresh. */
async function kick(user: DovecotUser): Promise<void> {
  await dovecot.doveadm(['kick', user.username]).catch(() => undefined);
}

describe('OAuth2 accounts', () => {
  it('logs in to IMAP with a token from the refresh token, and shows the grant without its secrets', async () => {
    const user = users[0]!;
    const grant = grantFor(user, { clientSecret: 'client-secret-1' });
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/accounts',
      payload: { protocol: 'imap', host: '127.0.0.1', port: dovecot.imapPort, security: 'none', username: user.username, oauth2: oauth2Body(grant, { clientSecret: 'client-secret-1' }) },
    });
    expect(res.statusCode, res.body).toBe(201);
    const view = res.json() as { id: string; authMethod: string; oauth2: unknown };
    expect(view.authMethod).toBe('oauth2');
    expect(view.oauth2).toEqual({ provider: 'custom', tokenUrl: provider.tokenUrl, clientId: grant.clientId, scope: 'mail' });
    const issued = provider.tokenRequests.filter((r) => r.clientId === grant.clientId);
    expect(issued.map((r) => [r.refreshToken, r.clientSecret, r.scope])).toEqual([[grant.refreshToken, 'client-secret-1', 'mail']]);
    const shown = (await gw.app.inject({ method: 'GET', url: `/v1/accounts/${view.id}` })).body + (await gw.app.inject({ method: 'GET', url: '/v1/accounts' })).body + res.body;
    expect(shown).not.toContain(grant.refreshToken);
    expect(shown).not.toContain('client-secret-1');
    expect(shown).not.toContain('at_');
    expect((await listing(gw.app, view.id)).statusCode).toBe(200);
    // The verifying login's token is kept: no renewal for the listing.
    expect(renewals(grant)).toBe(1);
  });

  it('refuses a grant it cannot use at save: no token URL, two secrets, a token URL the egress policy forbids', async () => {
    const user = users[0]!;
    const grant = grantFor(user);
    const body = (extra: Record<string, unknown>) => ({ protocol: 'imap', host: '127.0.0.1', port: dovecot.imapPort, security: 'none', username: user.username, ...extra });
    const post = (extra: Record<string, unknown>) => gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: body(extra) });
    expect(expectProblem(await post({ oauth2: oauth2Body(grant, { tokenUrl: undefined }) }), 400, 'VALIDATION_FAILED').detail).toMatch(/oauth2\/tokenUrl is required/);
    expectProblem(await post({ password: 'x', oauth2: oauth2Body(grant) }), 400, 'VALIDATION_FAILED');
    expectProblem(await post({ oauth2: oauth2Body(grant, { tokenUrl: 'https://10.1.2.3/token' }) }), 403, 'HOST_NOT_ALLOWED');
    const withUserinfo = await post({ oauth2: oauth2Body(grant, { tokenUrl: provider.tokenUrl.replace('http://', 'http://app:s3cret@') }) });
    expect(expectProblem(withUserinfo, 400, 'VALIDATION_FAILED').detail).toMatch(/must not carry a user name or password/);
    expect(withUserinfo.body).not.toContain('s3cret');
    expectProblem(await post({ oauth2: oauth2Body(grant, { provider: 'yahoo' }) }), 400, 'VALIDATION_FAILED');
    expect(renewals(grant)).toBe(0);
  });

  it('renews once and logs in again when the server refuses a token that should still be valid', async () => {
    const user = users[1]!;
    const grant = grantFor(user);
    const id = await createAccount(gw.app, user, grant);
    const first = provider.tokenRequests.length;
    // The provider revokes the access token early; the open sessions go, so the next request logs in.
    for (const token of provider.issuedTo(user.username)) provider.expireAccessToken(token);
    await kick(user);
    const res = await listing(gw.app, id);
    expect(res.statusCode, res.body).toBe(200);
    expect(provider.tokenRequests.length - first).toBe(1);
  });

  it('a login refused for another reason than the token renews once, not at every login', async () => {
    const user = users[1]!;
    const grant = grantFor(user);
    // The grant is the user's, the login another name: the server refuses whatever the token.
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/accounts?verify=false',
      payload: { protocol: 'imap', host: '127.0.0.1', port: dovecot.imapPort, security: 'none', username: `${user.username}-other`, oauth2: oauth2Body(grant) },
    });
    expect(res.statusCode, res.body).toBe(201);
    const id = (res.json() as { id: string }).id;
    for (let i = 0; i < 4; i++) expectProblem(await listing(gw.app, id) as never, 422, 'UPSTREAM_AUTH_FAILED');
    // The first token, and one renewal after the first refusal; the renewed token refused too says it is not the token.
    expect(renewals(grant)).toBe(2);
  });

  it('logs in to POP3 in both XOAUTH2 forms, and renews a token ahead of its expiry', async () => {
    for (const [user, provider_] of [[users[2]!, 'custom'], [users[3]!, 'microsoft']] as const) {
      const grant = grantFor(user);
      // `microsoft` sends the response after the server's `+` (Outlook's form); the token URL is ours.
      const id = await createAccount(gw.app, user, grant, { protocol: 'pop3', oauth2: oauth2Body(grant, { provider: provider_ }) });
      expect((await listing(gw.app, id)).statusCode).toBe(200);
      expect(renewals(grant)).toBe(1);
    }
    // A token living 61 s is renewed a second later (less than 60 s left) at the next login.
    const user = users[4]!;
    const grant = grantFor(user);
    provider.setExpiresIn(61);
    try {
      const id = await createAccount(gw.app, user, grant);
      expect(renewals(grant)).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      await kick(user);
      expect((await listing(gw.app, id)).statusCode).toBe(200);
      expect(renewals(grant)).toBe(2);
    } finally {
      provider.setExpiresIn(3600);
    }
  });

  it('keeps a rotated refresh token in the account record: a restarted gateway renews with it', async () => {
    const user = users[5]!;
    const grant = grantFor(user);
    provider.setRotation(true);
    const first = await startGateway();
    let restarted: TestGateway | undefined;
    try {
      const id = await createAccount(first.app, user, grant);
      expect(renewals(grant)).toBe(1);
      await first.app.close();
      // The restarted gateway has no token kept: it reads the record and must renew with the
      // rotated refresh token (the first one is invalid now).
      restarted = await startGateway({ DATA_DIR: first.dataDir });
      const res = await listing(restarted.app, id);
      expect(res.statusCode, res.body).toBe(200);
      const asked = provider.tokenRequests.filter((r) => r.clientId === grant.clientId).map((r) => r.refreshToken);
      expect(asked).toHaveLength(2);
      expect(asked[1]).not.toBe(grant.refreshToken);
    } finally {
      provider.setRotation(false);
      await restarted?.close();
      await rm(first.dataDir, { recursive: true, force: true });
    }
  });

  it('a refused refresh token is 422 naming the grant, an account.error, and no more requests to the provider', async () => {
    const user = users[6]!;
    const grant = grantFor(user);
    // At save: refused, nothing saved.
    provider.revoke(grant.refreshToken);
    const refusedAtSave = await gw.app.inject({
      method: 'POST',
      url: '/v1/accounts',
      payload: { protocol: 'imap', host: '127.0.0.1', port: dovecot.imapPort, security: 'none', username: user.username, oauth2: oauth2Body(grant) },
    });
    expect(expectProblem(refusedAtSave, 422, 'UPSTREAM_AUTH_FAILED').detail).toMatch(/refused the refresh token \(invalid_grant/);

    // Later: a working grant is revoked; once the token must be renewed every request is refused at once.
    const later = grantFor(user);
    const id = await createAccount(gw.app, user, later);
    provider.revoke(later.refreshToken);
    for (const token of provider.issuedTo(user.username)) provider.expireAccessToken(token);
    await kick(user);
    for (let i = 0; i < 3; i++) {
      const res = await listing(gw.app, id);
      expect(expectProblem(res as never, 422, 'UPSTREAM_AUTH_FAILED').detail).toMatch(/invalid_grant/);
    }
    expect(renewals(later)).toBe(2);
    const { events } = await gw.app.services.events!.log.readAfter(id, '0-0', 100);
    expect(events.filter((e) => e.type === 'account.error')).toEqual([expect.objectContaining({ code: 'UPSTREAM_AUTH_FAILED', detail: expect.stringMatching(/invalid_grant/) })]);
    // A new grant by PATCH works at once (its predecessor's back-off does not hold it).
    const fresh = grantFor(user);
    const patched = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { oauth2: oauth2Body(fresh) } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect((await listing(gw.app, id)).statusCode).toBe(200);
    // The refused grant is replaced by one that works: the account recovered, and says so once.
    const recoveries = async (): Promise<number> => (await gw.app.services.events!.log.readAfter(id, '0-0', 100)).events.filter((e) => e.type === 'account.recovered').length;
    await expect.poll(recoveries).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await recoveries()).toBe(1);
  });

  it('a change to a refused grant fails and leaves the working grant as it was', async () => {
    const user = users[8]!;
    const grant = grantFor(user);
    const id = await createAccount(gw.app, user, grant);
    const refused = grantFor(user);
    provider.revoke(refused.refreshToken);
    const patched = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { oauth2: oauth2Body(refused) } });
    expect(expectProblem(patched, 422, 'UPSTREAM_AUTH_FAILED').detail).toMatch(/invalid_grant.*the account was not changed/);
    // The next login uses the old grant's kept token: no refusal carried over, no renewal needed.
    await kick(user);
    const before = renewals(grant);
    const res = await listing(gw.app, id);
    expect(res.statusCode, res.body).toBe(200);
    expect(renewals(grant)).toBe(before);
    const view = (await gw.app.inject({ method: 'GET', url: `/v1/accounts/${id}` })).json() as { oauth2: Record<string, unknown> };
    expect(view.oauth2).toEqual({ provider: 'custom', tokenUrl: provider.tokenUrl, clientId: grant.clientId, scope: 'mail' });
  });

  it('a save that failed after the provider rotated the refresh token can be sent again with the same grant', async () => {
    const user = users[9]!;
    const grant = grantFor(user);
    const closed = await freePort();
    const body = { protocol: 'imap', host: '127.0.0.1', port: dovecot.imapPort, security: 'none', username: user.username, oauth2: oauth2Body(grant) };
    provider.setRotation(true);
    try {
      // The IMAP login is verified (its renewal rotated the refresh token), then SMTP cannot be reached: nothing saved.
      const failed = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: { ...body, smtp: { host: '127.0.0.1', port: closed, security: 'none' } } });
      expectProblem(failed, 502, 'UPSTREAM_ERROR');
      expect(provider.currentRefreshToken(grant.refreshToken)).not.toBe(grant.refreshToken);
      // The client sends its grant again (the only one it has): the gateway still knows the rotated one.
      const again = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: body });
      expect(again.statusCode, again.body).toBe(201);
      // A renewal now must use the rotated refresh token (the one the client holds is spent).
      for (const token of provider.issuedTo(user.username)) provider.expireAccessToken(token);
      await kick(user);
      const res = await listing(gw.app, (again.json() as { id: string }).id);
      expect(res.statusCode, res.body).toBe(200);
    } finally {
      provider.setRotation(false);
    }
  });

  it('gives a rotated refresh token to every account holding the grant (an IMAP and a POP3 account of one mailbox)', async () => {
    const user = users[1]!;
    const grant = grantFor(user);
    provider.setRotation(true);
    const first = await startGateway();
    let restarted: TestGateway | undefined;
    try {
      const imapId = await createAccount(first.app, user, grant);
      const pop3Id = await createAccount(first.app, user, grant, { protocol: 'pop3' });
      // The IMAP account renews (the token is refused early): the refresh token rotates again.
      for (const token of provider.issuedTo(user.username)) provider.expireAccessToken(token);
      await kick(user);
      expect((await listing(first.app, imapId)).statusCode).toBe(200);
      await first.app.close();
      // No token kept after a restart: the POP3 account renews with its own record's refresh token.
      restarted = await startGateway({ DATA_DIR: first.dataDir });
      const res = await listing(restarted.app, pop3Id);
      expect(res.statusCode, res.body).toBe(200);
    } finally {
      provider.setRotation(false);
      await restarted?.close();
      await rm(first.dataDir, { recursive: true, force: true });
    }
  });

  it('gives a record saved without a grant id its id at the first rotation, and keeps it after', async () => {
    const user = users[10]!;
    const grant = grantFor(user);
    const id = await createAccount(gw.app, user, grant);
    const store = gw.app.services.accountStore;
    const saved = (await store.get(id))!;
    const { grantId, ...legacy } = saved.oauth2!;
    await store.update({ ...saved, oauth2: legacy });
    provider.setRotation(true);
    try {
      for (let i = 0; i < 2; i++) {
        const { oauth2 } = (await gw.app.services.accounts.resolveMailAccount(id)).credentials as { oauth2: OAuth2Login };
        await oauth2.token(await oauth2.token());
        // The id the grant had (derived from it as given) is stored, and a second rotation keeps it.
        expect((await store.get(id))!.oauth2?.grantId, `rotation ${i + 1}`).toBe(grantId);
      }
      await kick(user);
      expect((await listing(gw.app, id)).statusCode).toBe(200);
    } finally {
      provider.setRotation(false);
    }
  });

  it('keeps its open sessions when a renewal rotates the refresh token', async () => {
    const user = users[10]!;
    const grant = grantFor(user);
    const id = await createAccount(gw.app, user, grant);
    expect((await listing(gw.app, id)).statusCode).toBe(200);
    provider.setRotation(true);
    try {
      const before = (await gw.app.services.accountStore.get(id))!;
      const { credentials } = await gw.app.services.accounts.resolveMailAccount(id);
      const { oauth2 } = credentials as { oauth2: OAuth2Login };
      // A renewal (as after a refused login elsewhere) that rotates the refresh token into the record.
      await oauth2.token(await oauth2.token());
      expect(provider.currentRefreshToken(grant.refreshToken)).not.toBe(grant.refreshToken);
      // The record took the rotated refresh token (its sealed secret changed) and kept its grant id.
      const after = (await gw.app.services.accountStore.get(id))!;
      expect(after.sealedSecret).not.toBe(before.sealedSecret);
      expect(after.oauth2?.grantId).toBe(before.oauth2?.grantId);
      // Same grant, same sessions: the next request logs in nowhere (Dovecot asks the provider at each login).
      const logins = provider.introspections;
      expect((await listing(gw.app, id)).statusCode).toBe(200);
      expect(provider.introspections).toBe(logins);
    } finally {
      provider.setRotation(false);
    }
  });

  it('20 concurrent requests after expiry renew once, and so do two gateway processes sharing Redis', async () => {
    const user = users[7]!;
    const env = { REDIS_URL: redisServer.url, SECRET_KEY: randomBytes(32).toString('hex') };
    const [a, b] = [await startGateway(env), await startGateway(env)];
    try {
      const grant = grantFor(user);
      const res = await a.app.inject({
        method: 'POST',
        url: '/v1/accounts?verify=false',
        payload: { protocol: 'imap', host: '127.0.0.1', port: dovecot.imapPort, security: 'none', username: user.username, oauth2: oauth2Body(grant) },
      });
      expect(res.statusCode, res.body).toBe(201);
      const id = (res.json() as { id: string }).id;
      provider.setTokenDelay(150);
      const answers = await Promise.all([...Array.from({ length: 10 }, () => listing(a.app, id)), ...Array.from({ length: 10 }, () => listing(b.app, id))]);
      expect(answers.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
      expect(renewals(grant)).toBe(1);
    } finally {
      provider.setTokenDelay(0);
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe.skipIf(!canRunMta)('OAuth2 SMTP submission', () => {
  let mta: TestMta;

  beforeAll(async () => {
    mta = await startMta({ dovecot, users });
  });

  afterAll(async () => {
    await mta?.stop();
  });

  it("sends with the account's own grant (XOAUTH2 through Postfix to Dovecot)", async () => {
    const sender = users[0]!;
    const recipient = users[1]!;
    const grant = grantFor(sender);
    const id = await createAccount(gw.app, sender, grant, { email: mta.address(sender.username), smtp: { host: mta.host, port: mta.port, security: 'none' } });
    const send = async (): Promise<void> => {
      const res = await gw.app.inject({ method: 'POST', url: `/v1/accounts/${id}/send`, payload: { to: [{ address: mta.address(recipient.username) }], subject: 'via oauth2', text: 'x', saveToSent: false } });
      expect(res.statusCode, res.body).toBe(202);
      const { queueId } = res.json() as { queueId: string };
      for (let i = 0; i < 200; i++) {
        const entry = (await gw.app.inject({ method: 'GET', url: `/v1/accounts/${id}/outbox/${queueId}` })).json() as { status: string; error: string | null };
        if (entry.status === 'sent') return;
        if (entry.status === 'failed' || entry.status === 'retrying') throw new Error(`not sent: ${JSON.stringify(entry)}\n${await mta.log()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error('not sent in time');
    };
    await send();
    // The account's own grant: SMTP logs in with the token IMAP got at save, no renewal of its own.
    expect(renewals(grant)).toBe(1);

    // SMTP settings with a grant of their own: its own tokens (and the account's stay as they are).
    const smtpGrant = grantFor(sender);
    const patched = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { smtp: { oauth2: oauth2Body(smtpGrant) } } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect((patched.json() as { smtp: { authMethod: string; oauth2: { clientId: string } } }).smtp).toMatchObject({ authMethod: 'oauth2', oauth2: { clientId: smtpGrant.clientId } });
    await send();
    expect(renewals(smtpGrant)).toBe(1);

    // An SMTP grant the provider refuses is refused at save, 422 naming the grant; nothing changes.
    const refused = grantFor(sender);
    provider.revoke(refused.refreshToken);
    const refusedPatch = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { smtp: { oauth2: oauth2Body(refused) } } });
    expect(expectProblem(refusedPatch, 422, 'UPSTREAM_AUTH_FAILED').detail).toMatch(/invalid_grant/);
    await send();
  });
});

describe('a server that offers OAUTHBEARER only (RFC 7628)', () => {
  const user: DovecotUser = { username: `bearer-${randomBytes(3).toString('hex')}`, password: randomBytes(9).toString('base64url') };
  let bearerOnly: DovecotServer;

  beforeAll(async () => {
    bearerOnly = await startDovecot({ users: [user], oauth2IntrospectionUrl: provider.introspectionUrl, oauth2Mechanisms: 'oauthbearer' });
  });

  afterAll(async () => {
    await bearerOnly?.stop();
  });

  it('logs in to IMAP and POP3 with OAUTHBEARER', async () => {
    for (const protocol of ['imap', 'pop3'] as const) {
      const grant = grantFor(user);
      const res = await gw.app.inject({
        method: 'POST',
        url: '/v1/accounts',
        payload: { protocol, host: '127.0.0.1', port: protocol === 'imap' ? bearerOnly.imapPort : bearerOnly.pop3Port, security: 'none', username: user.username, oauth2: oauth2Body(grant) },
      });
      expect(res.statusCode, `${protocol}: ${res.body}`).toBe(201);
      expect((await listing(gw.app, (res.json() as { id: string }).id)).statusCode).toBe(200);
    }
  });
});

describe('an SMTP server that refuses an OAuth2 login outright (535, no challenge)', () => {
  it('renews the token once and tries again, at save and when sending', async () => {
    const sender = users[11]!;
    const refusedTokens = new Set<string>();
    let refuseNext = false;
    const smtp = await startXOAuth2Smtp((token) => {
      if (refuseNext) refusedTokens.add(token);
      refuseNext = false;
      return !refusedTokens.has(token);
    });
    try {
      const grant = grantFor(sender);
      const smtpGrant = grantFor(sender);
      const id = await createAccount(gw.app, sender, grant, { email: `${sender.username}@example.test`, smtp: { host: smtp.host, port: smtp.port, security: 'none', oauth2: oauth2Body(smtpGrant) } });
      expect(smtp.logins).toEqual([{ token: expect.any(String), accepted: true }]);
      // The server stops taking the token early (revoked, or its clock runs ahead).
      refusedTokens.add(smtp.logins[0]!.token);
      const res = await gw.app.inject({ method: 'POST', url: `/v1/accounts/${id}/send`, payload: { to: [{ address: 'someone@example.test' }], subject: 'renewed', text: 'x', saveToSent: false } });
      expect(res.statusCode, res.body).toBe(202);
      const { queueId } = res.json() as { queueId: string };
      await expect
        .poll(async () => ((await gw.app.inject({ method: 'GET', url: `/v1/accounts/${id}/outbox/${queueId}` })).json() as { status: string }).status, { timeout: 10_000 })
        .toBe('sent');
      expect(smtp.logins.map((l) => l.accepted)).toEqual([true, false, true]);
      expect(smtp.logins[2]!.token).not.toBe(smtp.logins[0]!.token);
      expect(smtp.accepted).toBe(1);
      expect(renewals(smtpGrant)).toBe(2);

      // At save: a new SMTP grant whose first token the server refuses; renewed once, saved.
      const next = grantFor(sender);
      refuseNext = true;
      const patched = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { smtp: { oauth2: oauth2Body(next) } } });
      expect(patched.statusCode, patched.body).toBe(200);
      expect(smtp.logins.map((l) => l.accepted)).toEqual([true, false, true, false, true]);
      expect(renewals(next)).toBe(2);
    } finally {
      await smtp.close();
    }
  });
});
