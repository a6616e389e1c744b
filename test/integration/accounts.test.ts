/**
 * Accounts end to end against the real Dovecot: create (with and without the verifying login), the
 * three security modes, defaults, refusals, change and delete with what they do to open sessions, the
 * egress policy, API keys, secrets kept out of responses, logs and the account file, and the HTTP
 * edges (unknown routes, bad bodies) that every route shares.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { directImapClient } from '../support/imap-client.js';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPort } from '../../src/accounts/account-service.js';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, imapAccountBody, startGateway, type TestGateway } from '../support/gateway.js';
import { startFakeServer } from '../support/fake-servers.js';
import { expectProblem } from '../support/assertions.js';

const { dovecot } = testServers();

const ACCOUNT_ID = /^[A-Za-z0-9._-]{1,64}$/;
const SECRET_FIELDS = ['password', 'accessToken', 'sealedSecret', 'secret'];

interface AccountView {
  id: string;
  protocol: string;
  host: string;
  port: number;
  security: string;
  username: string;
  authMethod: string;
  tlsVerify: boolean;
  name: string | null;
  createdAt: string;
  updatedAt: string;
  capabilities: string[];
}

function expectNoSecretFields(view: Record<string, unknown>): void {
  for (const field of SECRET_FIELDS) expect(view, field).not.toHaveProperty(field);
}

function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Pids of the user's IMAP connections as Dovecot lists them (`who -1`: username, proto, pid, ip). */
async function sessionPids(username: string): Promise<string[]> {
  const out = await dovecot.doveadm(['who', '-1', username]);
  return out
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[0] === username && f[1] === 'imap')
    .map((f) => f[2] ?? '')
    .sort();
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Can `user` log in to Dovecot directly, as any other mail client would? */
async function canLogIn(user: DovecotUser): Promise<boolean> {
  const client = directImapClient(dovecot, user);
  try {
    await client.connect();
    await client.logout();
    return true;
  } catch {
    client.close();
    return false;
  }
}

/**
 * Changes a user's password on the server, as its owner would in a webmail: rewrites the user's own
 * passwd-file (see test/support/dovecot.ts) atomically and waits until Dovecot takes the new one
 * (it re-reads a passwd-file at most once a second).
 */
async function changeServerPassword(user: DovecotUser, newPassword: string): Promise<void> {
  const file = path.join(dovecot.dir, 'passwd', user.username);
  const line = await readFile(file, 'utf8');
  const fields = line.split(':');
  fields[1] = `{PLAIN}${newPassword}`;
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, fields.join(':'), { mode: 0o644 });
  await rename(tmp, file);
  await eventually(() => canLogIn({ username: user.username, password: newPassword }));
}

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway();
});

afterAll(async () => {
  await gw?.close();
});

function post(body: Record<string, unknown>, query = '') {
  return gw.app.inject({ method: 'POST', url: `/v1/accounts${query}`, payload: body });
}

async function listIds(app = gw.app): Promise<string[]> {
  const res = await app.inject({ url: '/v1/accounts' });
  expect(res.statusCode).toBe(200);
  return (res.json() as { accounts: AccountView[] }).accounts.map((a) => a.id);
}

describe('POST /v1/accounts', () => {
  it('creates: 201, Location, no secrets, createdAt, and the server capabilities', async () => {
    const user = await dovecot.createUser('acct');
    const id = uniqueId('create');
    const res = await post(imapAccountBody(dovecot, user, { id, name: 'Work' }));
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers.location).toBe(`/v1/accounts/${id}`);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const view = res.json() as AccountView;
    expectNoSecretFields(view as unknown as Record<string, unknown>);
    expect(res.body).not.toContain(user.password);
    expect(view).toMatchObject({
      id,
      protocol: 'imap',
      host: dovecot.host,
      port: dovecot.imapPort,
      security: 'none',
      username: user.username,
      authMethod: 'password',
      tlsVerify: false,
      name: 'Work',
    });
    expect(Number.isNaN(Date.parse(view.createdAt))).toBe(false);
    expect(Math.abs(Date.parse(view.createdAt) - Date.now())).toBeLessThan(60_000);
    // Dovecot has MOVE and CONDSTORE/QRESYNC; every IMAP account can be watched, so events too.
    expect([...view.capabilities].sort()).toEqual(['append', 'changes', 'copy', 'events', 'flags', 'folders', 'move', 'search']);

    const got = await gw.app.inject({ url: res.headers.location as string });
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual(view);
  });

  it('generates an id when none is given', async () => {
    const user = await dovecot.createUser('gen');
    const body = imapAccountBody(dovecot, user);
    expect(body).not.toHaveProperty('id');
    const a = await post(body);
    const b = await post(body, '?verify=false');
    expect(a.statusCode, a.body).toBe(201);
    expect(b.statusCode, b.body).toBe(201);
    const idA = (a.json() as AccountView).id;
    const idB = (b.json() as AccountView).id;
    expect(idA).toMatch(ACCOUNT_ID);
    expect(idB).toMatch(ACCOUNT_ID);
    expect(idA).not.toBe(idB);
    expect(a.headers.location).toBe(`/v1/accounts/${encodeURIComponent(idA)}`);
    expect((await gw.app.inject({ url: `/v1/accounts/${idA}` })).statusCode).toBe(200);
  });

  it('fills in the default port from protocol and security (993 with tls, 143 otherwise; 995 / 110 for POP3)', async () => {
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ security: 'tls' }, 993, 'tls'],
      [{ security: 'starttls' }, 143, 'starttls'],
      [{ security: 'none' }, 143, 'none'],
      [{}, 993, 'tls'], // security defaults to tls
    ];
    for (const [extra, port, security] of cases) {
      const body: Record<string, unknown> = {
        protocol: 'imap',
        host: dovecot.host,
        username: 'someone',
        password: 'some-pw',
        ...extra,
      };
      const res = await post(body, '?verify=false');
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json(), JSON.stringify(extra)).toMatchObject({ port, security });
    }
    // An explicit port is kept.
    const explicit = await post({ protocol: 'imap', host: dovecot.host, port: 1143, security: 'tls', username: 'u', password: 'p' }, '?verify=false');
    expect(explicit.json()).toMatchObject({ port: 1143 });
    // POP3 defaults (RFC 8314 §3.3 / RFC 1939): the same rule the service applies.
    expect(defaultPort('pop3', 'tls')).toBe(995);
    expect(defaultPort('pop3', 'starttls')).toBe(110);
    expect(defaultPort('pop3', 'none')).toBe(110);
  });

  it.each(['none', 'starttls', 'tls'] as const)('security=%s verifies the login and can list INBOX', async (security) => {
    const user = await dovecot.createUser(`sec-${security}`);
    const id = await createImapAccount(gw.app, dovecot, user, { security });
    const view = (await gw.app.inject({ url: `/v1/accounts/${id}` })).json() as AccountView;
    expect(view).toMatchObject({ security, port: security === 'tls' ? dovecot.imapsPort : dovecot.imapPort });
    const res = await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` });
    expect(res.statusCode, res.body).toBe(200);
    const paths = (res.json() as { mailboxes: Array<{ path: string }> }).mailboxes.map((m) => m.path);
    expect(paths).toContain('INBOX');
  });

  it.each(['tls', 'starttls'] as const)(
    'tlsVerify=true against the self-signed certificate (%s) is 502 UPSTREAM_ERROR about TLS, and nothing is saved',
    async (security) => {
      const user = await dovecot.createUser('tlsv');
      const id = uniqueId('tlsverify');
      const res = await post(imapAccountBody(dovecot, user, { id, security, tlsVerify: true }));
      const problem = expectProblem(res, 502, 'UPSTREAM_ERROR');
      expect(problem.detail).toMatch(/TLS/);
      expect(problem.detail).toMatch(/tlsVerify/);
      expect((await gw.app.inject({ url: `/v1/accounts/${id}` })).statusCode).toBe(404);
      expect(await listIds()).not.toContain(id);
    },
  );

  it('a wrong password is 422 UPSTREAM_AUTH_FAILED and nothing is saved', async () => {
    const user = await dovecot.createUser('wrongpw');
    const id = uniqueId('wrongpw');
    const res = await post(imapAccountBody(dovecot, user, { id, password: 'not-the-password' }));
    const problem = expectProblem(res, 422, 'UPSTREAM_AUTH_FAILED');
    // About the credentials just sent, not "stored" ones, and what to check.
    expect(problem.detail).not.toMatch(/stored/);
    expect(problem.detail).toMatch(/these credentials.*username and password.*nothing was saved/);
    expectProblem(await gw.app.inject({ url: `/v1/accounts/${id}` }), 404, 'ACCOUNT_NOT_FOUND');
    expect(await listIds()).not.toContain(id);
  });

  it('an access token against a server without OAuth2 login is 422 UPSTREAM_AUTH_FAILED saying so', async () => {
    const user = await dovecot.createUser('oauth');
    const id = uniqueId('oauth');
    const body = imapAccountBody(dovecot, user, { id, password: undefined, accessToken: 'ya29.some-token' });
    const problem = expectProblem(await post(body), 422, 'UPSTREAM_AUTH_FAILED');
    expect(problem.detail).toMatch(/XOAUTH2|OAUTHBEARER/);
    expect(await listIds()).not.toContain(id);
  });

  it('verify=false saves without dialling; the first use then reports the refused login', async () => {
    // A peer that would hold a login forever: if creation dialled it, the request would time out.
    const silent = await startFakeServer('silent');
    try {
      const res = await post(imapAccountBody(dovecot, { username: 'x', password: 'y' }, { port: silent.port }), '?verify=false');
      expect(res.statusCode, res.body).toBe(201);
      expect(silent.accepted).toBe(0);
    } finally {
      await silent.close();
    }
    const user = await dovecot.createUser('noverify');
    const id = uniqueId('noverify');
    const created = await post(imapAccountBody(dovecot, user, { id, password: 'wrong-but-unchecked' }), '?verify=false');
    expect(created.statusCode, created.body).toBe(201);
    expectProblem(await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` }), 422, 'UPSTREAM_AUTH_FAILED');
  });

  it('a taken id is 409 ACCOUNT_EXISTS and the first account is unchanged', async () => {
    const user = await dovecot.createUser('dup');
    const id = uniqueId('dup');
    const first = await post(imapAccountBody(dovecot, user, { id, name: 'first' }));
    expect(first.statusCode).toBe(201);
    expectProblem(await post(imapAccountBody(dovecot, user, { id, name: 'second' })), 409, 'ACCOUNT_EXISTS');
    expectProblem(await post(imapAccountBody(dovecot, user, { id, name: 'third' }), '?verify=false'), 409, 'ACCOUNT_EXISTS');
    expect((await gw.app.inject({ url: `/v1/accounts/${id}` })).json()).toMatchObject({ name: 'first' });
  });

  it('both or neither of password and accessToken is 400 VALIDATION_FAILED', async () => {
    const user = await dovecot.createUser('creds');
    const both = imapAccountBody(dovecot, user, { id: uniqueId('both'), accessToken: 'tok-123' });
    expectProblem(await post(both), 400, 'VALIDATION_FAILED');
    const neither = imapAccountBody(dovecot, user, { id: uniqueId('neither') });
    delete neither.password;
    expectProblem(await post(neither), 400, 'VALIDATION_FAILED');
    expectProblem(await post(neither, '?verify=false'), 400, 'VALIDATION_FAILED');
    expect(await listIds()).not.toContain(both.id);
    expect(await listIds()).not.toContain(neither.id);
  });

  it('refuses unknown fields, bad ids, bad enums and bad ports with 400 VALIDATION_FAILED', async () => {
    const user = await dovecot.createUser('val');
    const bodies: Array<Record<string, unknown>> = [
      imapAccountBody(dovecot, user, { colour: 'blue' }),
      imapAccountBody(dovecot, user, { id: 'has space' }),
      imapAccountBody(dovecot, user, { id: 'x'.repeat(65) }),
      imapAccountBody(dovecot, user, { id: '' }),
      imapAccountBody(dovecot, user, { protocol: 'smtp' }),
      imapAccountBody(dovecot, user, { security: 'ssl' }),
      imapAccountBody(dovecot, user, { port: 0 }),
      imapAccountBody(dovecot, user, { port: 70000 }),
      imapAccountBody(dovecot, user, { host: '' }),
      // JSON bodies are not coerced: a string where a number or boolean belongs is a client bug.
      imapAccountBody(dovecot, user, { port: String(dovecot.imapPort) }),
      imapAccountBody(dovecot, user, { tlsVerify: 'false' }),
      imapAccountBody(dovecot, user, { password: 17 }),
      imapAccountBody(dovecot, user, { id: '..' }),
    ];
    for (const body of bodies) {
      const res = await post(body, '?verify=false');
      expectProblem(res, 400, 'VALIDATION_FAILED');
    }
    expectProblem(await post(imapAccountBody(dovecot, user), '?verify=maybe'), 400, 'VALIDATION_FAILED');
  });

  it('refuses the ids "." and "..": as path segments they could never be addressed again', async () => {
    for (const id of ['.', '..']) {
      expectProblem(await post(imapAccountBody(dovecot, { username: 'x', password: 'y' }, { id }), '?verify=false'), 400, 'VALIDATION_FAILED');
      expect(await listIds()).not.toContain(id);
    }
    // Dots inside an id are fine, and the id is reachable at its Location.
    const res = await post(imapAccountBody(dovecot, { username: 'x', password: 'y' }, { id: '...' }), '?verify=false');
    expect(res.statusCode, res.body).toBe(201);
    expect((await gw.app.inject({ url: res.headers.location as string })).json()).toMatchObject({ id: '...' });
    expect((await gw.app.inject({ method: 'DELETE', url: res.headers.location as string })).statusCode).toBe(204);
  });
});

describe('GET /v1/accounts', () => {
  it('lists every account without secrets, and GET one answers the same view', async () => {
    const user = await dovecot.createUser('list');
    const id = await createImapAccount(gw.app, dovecot, user, { id: uniqueId('listed') });
    const res = await gw.app.inject({ url: '/v1/accounts' });
    expect(res.statusCode).toBe(200);
    const accounts = (res.json() as { accounts: AccountView[] }).accounts;
    expect(accounts.length).toBeGreaterThan(0);
    for (const a of accounts) expectNoSecretFields(a as unknown as Record<string, unknown>);
    expect(res.body).not.toContain(user.password);
    const mine = accounts.find((a) => a.id === id);
    expect(mine).toBeDefined();
    const one = await gw.app.inject({ url: `/v1/accounts/${id}` });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toEqual(mine);
  });

  it('an unknown account is 404 ACCOUNT_NOT_FOUND; a malformed id 400', async () => {
    expectProblem(await gw.app.inject({ url: '/v1/accounts/no-such-account' }), 404, 'ACCOUNT_NOT_FOUND');
    expectProblem(await gw.app.inject({ url: '/v1/accounts/bad%20id' }), 400, 'VALIDATION_FAILED');
  });
});

describe('PATCH /v1/accounts/{account}', () => {
  it('changes the name without touching the open session', async () => {
    const user = await dovecot.createUser('pname');
    const id = await createImapAccount(gw.app, dovecot, user, { name: 'old' });
    const before = (await gw.app.inject({ url: `/v1/accounts/${id}` })).json() as AccountView;
    expect((await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` })).statusCode).toBe(200);
    const pids = await sessionPids(user.username);
    expect(pids).toHaveLength(1);

    const res = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { name: 'new' } });
    expect(res.statusCode, res.body).toBe(200);
    const view = res.json() as AccountView;
    expect(view).toMatchObject({ id, name: 'new', createdAt: before.createdAt });
    expect(Date.parse(view.updatedAt)).toBeGreaterThanOrEqual(Date.parse(before.updatedAt));
    expect(view.capabilities).toEqual(before.capabilities);
    expect((await gw.app.inject({ url: `/v1/accounts/${id}` })).json()).toMatchObject({ name: 'new' });

    // The same session serves the next request: nothing was dropped, nothing reconnected.
    expect((await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` })).statusCode).toBe(200);
    expect(await sessionPids(user.username)).toEqual(pids);
  });

  it('a wrong new password is 422 and the old one keeps working', async () => {
    const user = await dovecot.createUser('pwrong');
    const id = await createImapAccount(gw.app, dovecot, user);
    const before = (await gw.app.inject({ url: `/v1/accounts/${id}` })).json() as AccountView;
    const res = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { password: 'definitely-wrong' } });
    expect(expectProblem(res, 422, 'UPSTREAM_AUTH_FAILED').detail).toMatch(/^The mail server refused the login with these credentials.*the account was not changed$/);
    expect((await gw.app.inject({ url: `/v1/accounts/${id}` })).json()).toEqual(before);
    // A fresh login (no pooled session) still uses the stored, old password.
    await gw.app.services.imap.dropAccount(id);
    const listing = await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` });
    expect(listing.statusCode, listing.body).toBe(200);
  });

  it('the new password after a change on the server is verified, and sessions opened with the old one are dropped', async () => {
    const user = await dovecot.createUser('pright');
    const id = await createImapAccount(gw.app, dovecot, user);
    expect((await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` })).statusCode).toBe(200);
    const oldPids = await sessionPids(user.username);
    expect(oldPids).toHaveLength(1);

    const newPassword = `new-${randomBytes(6).toString('hex')}`;
    await changeServerPassword(user, newPassword);
    // Dovecot keeps sessions that logged in before the change: only the gateway can end them.
    expect(await sessionPids(user.username)).toEqual(oldPids);

    const res = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { password: newPassword } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.body).not.toContain(newPassword);
    expectNoSecretFields(res.json() as Record<string, unknown>);
    // The verified server's capabilities are still reported after the change.
    expect((res.json() as AccountView).capabilities).toEqual(expect.arrayContaining(['move', 'changes']));
    await eventually(async () => (await sessionPids(user.username)).length === 0);

    const listing = await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` });
    expect(listing.statusCode, listing.body).toBe(200);
    const newPids = await sessionPids(user.username);
    expect(newPids).toHaveLength(1);
    expect(newPids).not.toEqual(oldPids);
  });

  it('moves a default port along with a change of security, and keeps an explicit one', async () => {
    const created = await post({ protocol: 'imap', host: dovecot.host, security: 'tls', username: 'u', password: 'p' }, '?verify=false');
    const id = (created.json() as AccountView).id;
    const toStarttls = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}?verify=false`, payload: { security: 'starttls' } });
    expect(toStarttls.json()).toMatchObject({ security: 'starttls', port: 143 });
    const explicit = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}?verify=false`, payload: { port: 1143 } });
    expect(explicit.json()).toMatchObject({ port: 1143 });
    const toTls = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}?verify=false`, payload: { security: 'tls' } });
    expect(toTls.json()).toMatchObject({ security: 'tls', port: 1143 });
  });

  it('refuses an id change, unknown fields and an empty body with 400, and an unknown account with 404', async () => {
    const user = await dovecot.createUser('pval');
    const id = await createImapAccount(gw.app, dovecot, user);
    for (const payload of [{ id: 'other' }, { colour: 'blue' }, {}, { password: 'a', accessToken: 'b' }]) {
      const res = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}`, payload });
      expectProblem(res, 400, 'VALIDATION_FAILED');
    }
    expectProblem(
      await gw.app.inject({ method: 'PATCH', url: '/v1/accounts/no-such-account', payload: { name: 'x' } }),
      404,
      'ACCOUNT_NOT_FOUND',
    );
  });

  it('a new host must pass the egress policy (403 HOST_NOT_ALLOWED), and nothing changes', async () => {
    const user = await dovecot.createUser('phost');
    const id = await createImapAccount(gw.app, dovecot, user);
    for (const query of ['', '?verify=false']) {
      const res = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}${query}`, payload: { host: '10.0.0.1' } });
      expectProblem(res, 403, 'HOST_NOT_ALLOWED');
    }
    expect((await gw.app.inject({ url: `/v1/accounts/${id}` })).json()).toMatchObject({ host: dovecot.host });
  });
});

describe('DELETE /v1/accounts/{account}', () => {
  it('answers 204, then 404, and logs its IMAP sessions out', async () => {
    const user = await dovecot.createUser('del');
    const id = await createImapAccount(gw.app, dovecot, user);
    // Two sessions: a listing of messages and a mailbox listing running side by side.
    const [a, b] = await Promise.all([
      gw.app.inject({ url: `/v1/accounts/${id}/mailboxes/INBOX/messages` }),
      gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` }),
    ]);
    expect(a.statusCode).toBe(200);
    expect(b.statusCode).toBe(200);
    expect((await sessionPids(user.username)).length).toBeGreaterThanOrEqual(1);

    const res = await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${id}` });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expectProblem(await gw.app.inject({ url: `/v1/accounts/${id}` }), 404, 'ACCOUNT_NOT_FOUND');
    expect(await listIds()).not.toContain(id);
    expectProblem(await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${id}` }), 404, 'ACCOUNT_NOT_FOUND');
    expectProblem(await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` }), 404, 'ACCOUNT_NOT_FOUND');
    await eventually(async () => (await sessionPids(user.username)).length === 0);
    // LOGOUT, not a dropped socket: Dovecot logs a clean "Logged out" for the user.
    const log = await readFile(path.join(dovecot.dir, 'dovecot.log'), 'utf8');
    expect(log).toMatch(new RegExp(`imap\\(${user.username}\\).*Logged out`));
    expect(log).not.toMatch(new RegExp(`imap\\(${user.username}\\).*Disconnected: Connection closed`));
  });
});

describe('the account file', () => {
  it('never holds a plaintext password, only the sealed secret', async () => {
    const user = await dovecot.createUser('file');
    const id = await createImapAccount(gw.app, dovecot, user);
    const unverified = 'unverified-plain-pw-123';
    expect((await post(imapAccountBody(dovecot, user, { password: unverified }), '?verify=false')).statusCode).toBe(201);
    const patched = 'patched-plain-pw-456';
    const patch = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${id}?verify=false`, payload: { password: patched } });
    expect(patch.statusCode).toBe(200);
    const token = 'oauth-token-plain-789';
    expect((await post(imapAccountBody(dovecot, user, { password: undefined, accessToken: token }), '?verify=false')).statusCode).toBe(201);

    const text = await readFile(path.join(gw.dataDir, 'accounts.json'), 'utf8');
    for (const secret of [user.password, unverified, patched, token]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(Buffer.from(secret).toString('base64'));
    }
    const stored = (JSON.parse(text) as { accounts: Array<Record<string, unknown>> }).accounts.find((a) => a.id === id);
    expect(stored?.sealedSecret).toMatch(/^v1\./);
    expect(stored).not.toHaveProperty('password');
  });
});

describe('egress policy', () => {
  it('by default refuses loopback with 403 HOST_NOT_ALLOWED, dials nothing and saves nothing', async () => {
    const strict = await startGateway({ EGRESS_ALLOW: '' });
    const listener = await startFakeServer('greet-then-silent');
    try {
      const user = await dovecot.createUser('egress');
      for (const [host, query] of [
        ['127.0.0.1', ''],
        ['127.0.0.1', '?verify=false'],
        ['localhost', ''],
        ['localhost', '?verify=false'],
        ['127.1.2.3', ''],
        ['[::1]', ''],
      ] as const) {
        const res = await strict.app.inject({
          method: 'POST',
          url: `/v1/accounts${query}`,
          payload: imapAccountBody(dovecot, user, { host, port: listener.port }),
        });
        const problem = expectProblem(res, 403, 'HOST_NOT_ALLOWED');
        // The detail names the host, not the policy's internals.
        expect(problem.detail).toContain(host);
      }
      expect(listener.accepted).toBe(0);
      expect(await listIds(strict.app)).toEqual([]);
    } finally {
      await listener.close();
      await strict.close();
    }
  });

  it('with EGRESS_ALLOW=127.0.0.1/32 the same account is created and used', async () => {
    const open = await startGateway({ EGRESS_ALLOW: '127.0.0.1/32' });
    try {
      const user = await dovecot.createUser('egress-ok');
      const id = await createImapAccount(open.app, dovecot, user);
      expect((await open.app.inject({ url: `/v1/accounts/${id}/mailboxes` })).statusCode).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe('API keys', () => {
  const key = `k-${randomBytes(16).toString('hex')}`;
  let keyed: TestGateway;

  beforeAll(async () => {
    keyed = await startGateway({ API_KEYS: `${key},second-key-${randomBytes(8).toString('hex')}` });
  });
  afterAll(async () => {
    await keyed?.close();
  });

  it.each([
    ['no Authorization header', undefined],
    ['a wrong key', `Bearer wrong-${key}`],
    ['a key as Basic credentials', `Basic ${Buffer.from(`x:${key}`).toString('base64')}`],
    ['a prefix of the key', `Bearer ${key.slice(0, -1)}`],
    ['an empty bearer', 'Bearer '],
  ])('answers 401 UNAUTHORIZED problem+json with WWW-Authenticate for %s', async (_label, authorization) => {
    for (const [method, url] of [
      ['GET', '/v1/accounts'],
      ['POST', '/v1/accounts'],
      ['GET', '/v1/accounts/whatever/mailboxes'],
      ['DELETE', '/v1/accounts/whatever'],
    ] as const) {
      const res = await keyed.app.inject({
        method,
        url,
        headers: authorization === undefined ? {} : { authorization },
        ...(method === 'POST' ? { payload: { protocol: 'imap' } } : {}),
      });
      expectProblem(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
    }
  });

  it('lets the right key through', async () => {
    const res = await keyed.app.inject({ url: '/v1/accounts', headers: { authorization: `Bearer ${key}` } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ accounts: [] });
    const lower = await keyed.app.inject({ url: '/v1/accounts', headers: { authorization: `bearer ${key}` } });
    expect(lower.statusCode).toBe(200);
  });

  it('leaves /health, /ready and /docs/json open', async () => {
    for (const url of ['/health', '/ready', '/docs/json']) {
      const res = await keyed.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
    }
  });

  it('does not let a public prefix open a /v1 route', async () => {
    for (const url of ['/health/../v1/accounts', '/docs/../v1/accounts', '/healthz', '/v1/accounts?/health']) {
      const res = await keyed.app.inject({ url });
      expect(res.statusCode, url).not.toBe(200);
    }
  });
});

describe('secrets never reach a response or a log line', () => {
  it('across create, list, get, patch and failing logins, at trace level', async () => {
    const key = `logkey-${randomBytes(16).toString('hex')}`;
    const logged = await startGateway({ API_KEYS: key }, { captureLogs: true });
    const auth = { authorization: `Bearer ${key}` };
    const responses: string[] = [];
    const call = async (options: InjectOptions & { headers?: Record<string, string> }): Promise<LightMyRequestResponse> => {
      const res = await logged.app.inject({ ...options, headers: { ...auth, ...options.headers } });
      responses.push(JSON.stringify(res.headers), res.body);
      return res;
    };
    try {
      const user = await dovecot.createUser('secrets');
      const wrong = `wrong-${randomBytes(8).toString('hex')}`;
      const unverified = `unverified-${randomBytes(8).toString('hex')}`;
      const patchedWrong = `patchwrong-${randomBytes(8).toString('hex')}`;
      const patchedSaved = `patchsaved-${randomBytes(8).toString('hex')}`;
      const token = `token-${randomBytes(8).toString('hex')}`;
      const inBadJson = `badjson-${randomBytes(8).toString('hex')}`;
      const inBadBody = `badbody-${randomBytes(8).toString('hex')}`;
      const secrets = [user.password, wrong, unverified, patchedWrong, patchedSaved, token, inBadJson, inBadBody];

      const created = await call({ method: 'POST', url: '/v1/accounts', payload: imapAccountBody(dovecot, user) });
      expect(created.statusCode, created.body).toBe(201);
      const id = (created.json() as AccountView).id;
      // The verifying login of each security mode (LOGIN or AUTHENTICATE PLAIN, with and without TLS).
      for (const security of ['starttls', 'tls'] as const) {
        expect((await call({ method: 'POST', url: '/v1/accounts', payload: imapAccountBody(dovecot, user, { security }) })).statusCode).toBe(201);
      }
      const refused = await call({ method: 'POST', url: '/v1/accounts', payload: imapAccountBody(dovecot, user, { password: wrong }) });
      expect(refused.statusCode).toBe(422);
      const saved = await call({
        method: 'POST',
        url: '/v1/accounts?verify=false',
        payload: imapAccountBody(dovecot, user, { password: unverified }),
      });
      expect(saved.statusCode).toBe(201);
      const savedId = (saved.json() as AccountView).id;
      const tokenAccount = await call({
        method: 'POST',
        url: '/v1/accounts',
        payload: imapAccountBody(dovecot, user, { password: undefined, accessToken: token }),
      });
      expect([422, 502]).toContain(tokenAccount.statusCode);

      expect((await call({ url: '/v1/accounts' })).statusCode).toBe(200);
      expect((await call({ url: `/v1/accounts/${id}` })).statusCode).toBe(200);
      expect((await call({ url: `/v1/accounts/${id}/mailboxes` })).statusCode).toBe(200);
      expect((await call({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { password: patchedWrong } })).statusCode).toBe(422);
      expect((await call({ method: 'PATCH', url: `/v1/accounts/${savedId}?verify=false`, payload: { password: patchedSaved } })).statusCode).toBe(200);
      // A failing login at use time (the stored password is wrong).
      expect((await call({ url: `/v1/accounts/${savedId}/mailboxes` })).statusCode).toBe(422);
      // Bodies the gateway cannot accept still carry a password: neither the parser's nor the
      // validator's message may quote it back.
      const badJson = await call({
        method: 'POST',
        url: '/v1/accounts',
        headers: { 'content-type': 'application/json' },
        payload: `{"protocol":"imap","password":"${inBadJson}",}`,
      });
      expectProblem(badJson, 400, 'VALIDATION_FAILED');
      const badBody = await call({
        method: 'POST',
        url: '/v1/accounts',
        payload: { ...imapAccountBody(dovecot, user, { password: inBadBody }), port: 'not-a-port' },
      });
      expectProblem(badBody, 400, 'VALIDATION_FAILED');
      const badPatch = await call({ method: 'PATCH', url: `/v1/accounts/${id}`, payload: { password: { value: inBadBody } } });
      expectProblem(badPatch, 400, 'VALIDATION_FAILED');
      const unauthorized = await logged.app.inject({ url: '/v1/accounts', headers: { authorization: `Bearer ${key}x` } });
      expect(unauthorized.statusCode).toBe(401);
      responses.push(unauthorized.body);

      expect(logged.logs.length).toBeGreaterThan(10); // the capture works: requests were logged
      // ...down to the protocol lines of the mail sessions, logins included.
      expect(logged.logs.some((line) => /"component":"imapflow".*"msg":"\d+ (AUTHENTICATE|LOGIN)\b/.test(line))).toBe(true);
      const everything = [...logged.logs, ...responses];
      const forbidden = [key, ...secrets, ...secrets.map((s) => Buffer.from(s).toString('base64'))];
      // AUTHENTICATE PLAIN carries base64("\0user\0password") (RFC 4616).
      for (const s of secrets) forbidden.push(Buffer.from(`\0${user.username}\0${s}`).toString('base64'));
      for (const text of everything) {
        for (const secret of forbidden) expect(text.includes(secret), `${secret} in: ${text.slice(0, 300)}`).toBe(false);
      }
    } finally {
      await logged.close();
    }
  });
});

describe('HTTP edges', () => {
  it('an unknown route is 404 problem+json', async () => {
    for (const url of ['/nope', '/v1/nope', '/v1/accounts/x/y/z/w/v']) {
      const res = await gw.app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      const body = res.json() as Record<string, unknown>;
      expect(typeof body.code).toBe('string');
      expect(body.status).toBe(404);
    }
  });

  it('a wrong method is a problem+json with a code', async () => {
    for (const [method, url] of [
      ['PUT', '/v1/accounts'],
      ['DELETE', '/v1/accounts'],
      ['POST', '/v1/accounts/some-id'],
    ] as const) {
      const res = await gw.app.inject({ method, url, payload: {} });
      expect([404, 405], `${method} ${url}`).toContain(res.statusCode);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      const body = res.json() as Record<string, unknown>;
      expect(typeof body.code).toBe('string');
      expect(body.status).toBe(res.statusCode);
    }
  });

  it('invalid JSON is 400 VALIDATION_FAILED', async () => {
    for (const payload of ['{"protocol":', 'not json', '{"a":1}}']) {
      const res = await gw.app.inject({
        method: 'POST',
        url: '/v1/accounts',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expectProblem(res, 400, 'VALIDATION_FAILED');
    }
    const empty = await gw.app.inject({ method: 'POST', url: '/v1/accounts', headers: { 'content-type': 'application/json' }, payload: '' });
    expectProblem(empty, 400, 'VALIDATION_FAILED');
  });

  it('a JSON body over 1 MB is 413 PAYLOAD_TOO_LARGE', async () => {
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/accounts',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ protocol: 'imap', name: 'x'.repeat(1024 * 1024 + 10) }),
    });
    expectProblem(res, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('a body that is not JSON is 415 problem+json', async () => {
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const res = await gw.app.inject({
        method: 'POST',
        url: '/v1/accounts',
        headers: { 'content-type': contentType },
        payload: 'protocol=imap&host=example.com',
      });
      expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    }
  });
});
