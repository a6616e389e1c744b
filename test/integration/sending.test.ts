/**
 * Sending end to end (API.md, Sending), with the outbox under DATA_DIR and in Redis: a real Postfix
 * with SMTP AUTH (test/support/mta.ts) delivering into the run's Dovecot, so each message is read
 * back from the recipient's INBOX through the gateway, and the sender's copy from its Sent mailbox.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import { expectProblem } from '../support/assertions.js';
import { createImapAccount, createPop3Account, imapAccountBody, startGateway, type TestGateway } from '../support/gateway.js';
import { canRunMta, startMta, type TestMta } from '../support/mta.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot } = testServers();

interface OutboxEntryView {
  queueId: string;
  messageId: string;
  status: string;
  attempts: number;
  nextAttemptAt: string | null;
  recipients: Array<{ address: string; status: string; response: string | null }>;
  error: string | null;
  permanent: boolean | null;
  size: number;
  sentCopy: string;
  sentCopyError: string | null;
  createdAt: string;
  sentAt: string | null;
}

interface Summary {
  id: string;
  messageId: string | null;
  subject: string | null;
  flags: string[];
  from: Array<{ name: string; address: string }>;
}

let gw: TestGateway;
let mta: TestMta;
let alice: DovecotUser;
let bob: DovecotUser;
let carol: DovecotUser;
let aliceId: string;
let bobId: string;
let carolId: string;

async function call(options: InjectOptions) {
  return gw.app.inject(options);
}

function smtpSettings(user: DovecotUser, extra: Record<string, unknown> = {}) {
  return { host: mta.host, port: mta.port, security: 'none', ...(user === alice ? {} : { username: user.username, password: user.password }), ...extra };
}

async function send(account: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await call({ method: 'POST', url: `/v1/accounts/${account}/send`, payload: body as Record<string, unknown>, headers });
  expect(res.statusCode, res.body).toBe(202);
  return { ...(res.json() as { queueId: string; messageId: string }), headers: res.headers };
}

/** The entry once `done(entry)` holds (polled; the outbox works in the background). */
async function entryOnce(account: string, queueId: string, done: (e: OutboxEntryView) => boolean, timeoutMs = 15_000): Promise<OutboxEntryView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await call({ method: 'GET', url: `/v1/accounts/${account}/outbox/${queueId}` });
    expect(res.statusCode, res.body).toBe(200);
    const entry = res.json() as OutboxEntryView;
    if (done(entry)) return entry;
    if (Date.now() > deadline) throw new Error(`outbox entry still ${JSON.stringify(entry)}; maillog:\n${await mta.log()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const final = (e: OutboxEntryView): boolean => ['sent', 'failed', 'cancelled'].includes(e.status) && e.sentCopy !== 'pending';

/** The listing of `mailbox` once a message with `messageId` is in it. */
async function messageArrives(account: string, mailbox: string, messageId: string, timeoutMs = 10_000): Promise<Summary> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await call({ method: 'GET', url: `/v1/accounts/${account}/mailboxes/${encodeURIComponent(mailbox)}/messages?limit=50` });
    if (res.statusCode === 200) {
      const found = (res.json() as { messages: Summary[] }).messages.find((m) => m.messageId === messageId);
      if (found) return found;
    }
    if (Date.now() > deadline) throw new Error(`${messageId} did not arrive in ${account}/${mailbox} (${res.statusCode} ${res.body}); maillog:\n${await mta.log()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The event of `type` about outbox entry `queueId` in the account's log (written before the entry is final). */
async function eventOf(account: string, type: string, queueId: string): Promise<Record<string, unknown>> {
  const { events } = await gw.app.services.events!.log.readAfter(account, '0-0', 1000);
  const found = events.find((e) => e.type === type && e.queueId === queueId);
  if (!found) throw new Error(`no ${type} for ${queueId} among ${events.map((e) => e.type).join(', ')}`);
  return found;
}

async function raw(account: string, mailbox: string, id: string): Promise<Buffer> {
  const res = await call({ method: 'GET', url: `/v1/accounts/${account}/mailboxes/${encodeURIComponent(mailbox)}/messages/${id}/raw` });
  expect(res.statusCode).toBe(200);
  return res.rawPayload;
}

/** A delivered message without the trace fields Postfix and Dovecot put on top. */
function withoutTrace(source: Buffer): Buffer {
  let offset = 0;
  for (;;) {
    const rest = source.subarray(offset);
    const match = /^(Return-Path|Delivered-To|Received):/i.exec(rest.subarray(0, 40).toString('latin1'));
    if (!match) return rest;
    const text = rest.toString('latin1');
    const end = text.search(/\r\n(?![ \t])/);
    offset += end + 2;
  }
}

/** The same suite over each outbox store: files under DATA_DIR (the embedded mode), and Redis (any number of processes). */
const STORES = [
  { store: 'outbox under DATA_DIR', withRedis: false },
  { store: 'outbox in Redis', withRedis: true },
];

describe.skipIf(!canRunMta).each(STORES)('sending through a real MTA ($store)', ({ withRedis }) => {
  let redisServer: RedisServer | undefined;
  /** The gateway's store settings, for a second gateway on the same store. */
  let storeEnv: Record<string, string> = {};

  /** Outbox message bytes still stored (none once every entry is final and its copy dealt with). */
  async function storedBytes(): Promise<string[]> {
    if (redisServer === undefined) return readdir(path.join(gw.dataDir, 'outbox', 'raw'));
    const client = new Redis(redisServer.url, { lazyConnect: true });
    try {
      await client.connect();
      return await client.keys('*outbox*:raw:*');
    } finally {
      client.disconnect();
    }
  }

  beforeAll(async () => {
    redisServer = withRedis ? await startRedis() : undefined;
    storeEnv = redisServer ? { REDIS_URL: redisServer.url, SECRET_KEY: randomBytes(32).toString('hex') } : {};
    [alice, bob, carol] = await Promise.all([dovecot.createUser('send-alice'), dovecot.createUser('send-bob'), dovecot.createUser('send-carol')]);
    mta = await startMta({ dovecot, users: [alice, bob, carol], messageSizeLimitBytes: 64 * 1024 * 1024 });
    gw = await startGateway({ OUTBOX_KEEP_HOURS: '1', ...storeEnv });
    // alice's Dovecot username is not an address: her email is given, her SMTP login is her own.
    aliceId = await createImapAccount(gw.app, dovecot, alice, { email: mta.address(alice.username), smtp: smtpSettings(alice) });
    bobId = await createImapAccount(gw.app, dovecot, bob, { email: mta.address(bob.username) });
    carolId = await createImapAccount(gw.app, dovecot, carol, { email: mta.address(carol.username) });
  });

  afterAll(async () => {
    await gw?.close();
    await mta?.stop();
    await redisServer?.stop();
  });

  it('shows the SMTP settings without a secret, and `send` exactly when the account has them', async () => {
    const res = await call({ method: 'GET', url: `/v1/accounts/${aliceId}` });
    const view = res.json() as { capabilities: string[]; email: string; smtp: Record<string, unknown> };
    expect(view.capabilities).toContain('send');
    expect(view.email).toBe(mta.address(alice.username));
    expect(view.smtp).toEqual({ host: mta.host, port: mta.port, security: 'none', username: alice.username, authMethod: 'password', oauth2: null, tlsVerify: true });
    expect(res.body).not.toContain(alice.password);
    const bobView = (await call({ method: 'GET', url: `/v1/accounts/${bobId}` })).json() as { capabilities: string[]; smtp: unknown };
    expect(bobView.capabilities).not.toContain('send');
    expect(bobView.smtp).toBeNull();
    expectProblem(await call({ method: 'POST', url: `/v1/accounts/${bobId}/send`, payload: { to: [{ address: 'x@example.com' }], text: 'hi' } }), 422, 'SMTP_NOT_CONFIGURED');
  });

  it('verifies SMTP credentials at save: a refused login is 422 and nothing is saved', async () => {
    const body = imapAccountBody(dovecot, bob, { id: 'send-wrong-smtp', smtp: smtpSettings(bob, { password: `${bob.password}-wrong` }) });
    const res = await call({ method: 'POST', url: '/v1/accounts', payload: body });
    expect(expectProblem(res, 422, 'UPSTREAM_AUTH_FAILED').detail).toMatch(/SMTP server refused the login.*nothing was saved/);
    expect(res.body).not.toContain(bob.password);
    expect((await call({ method: 'GET', url: '/v1/accounts/send-wrong-smtp' })).statusCode).toBe(404);
    // The egress policy applies to the SMTP host.
    expectProblem(
      await call({ method: 'PATCH', url: `/v1/accounts/${bobId}`, payload: { smtp: { host: '10.1.2.3', port: 587 } } }),
      403,
      'HOST_NOT_ALLOWED',
    );
  });

  it('sends a composed message: read back from the INBOX, the exact bytes in Sent with \\Seen, events and outcome recorded', async () => {
    const subject = 'Grüße aus Köln — 日本語 ✉';
    const receipt = await send(aliceId, {
      to: [{ name: 'Bob Bäcker', address: mta.address(bob.username) }],
      subject,
      text: 'Hello Bob,\nsee attached.',
      html: '<p>Hello Bob,<br>see attached.</p>',
      attachments: [{ filename: 'Übersicht 2026.txt', contentType: 'text/plain', content: Buffer.from('zeile 1\nzeile 2\n').toString('base64') }],
    });
    expect(receipt.queueId).toMatch(/^q_/);
    expect(receipt.messageId).toMatch(/^<[^<>@\s]+@[^<>\s]+>$/);
    expect(receipt.headers.location).toBe(`/v1/accounts/${aliceId}/outbox/${receipt.queueId}`);

    const entry = await entryOnce(aliceId, receipt.queueId, final);
    expect(entry).toMatchObject({ status: 'sent', attempts: 1, permanent: false, sentCopy: 'saved', error: null, nextAttemptAt: null });
    expect(entry.recipients).toEqual([{ address: mta.address(bob.username), status: 'sent', response: expect.stringMatching(/^250 /) }]);

    const delivered = await messageArrives(bobId, 'INBOX', receipt.messageId);
    expect(delivered.subject).toBe(subject);
    expect(delivered.from).toEqual([{ name: '', address: mta.address(alice.username) }]);
    const detail = (await call({ method: 'GET', url: `/v1/accounts/${bobId}/mailboxes/INBOX/messages/${delivered.id}` })).json() as {
      to: Array<{ name: string; address: string }>;
      text: string;
      attachments: Array<{ filename: string; size: number }>;
    };
    expect(detail.to).toEqual([{ name: 'Bob Bäcker', address: mta.address(bob.username) }]);
    expect(detail.text.replace(/\r\n/g, '\n').trim()).toBe('Hello Bob,\nsee attached.');
    expect(detail.attachments.map((a) => a.filename)).toEqual(['Übersicht 2026.txt']);

    const copy = await messageArrives(aliceId, 'Sent', receipt.messageId);
    expect(copy.flags).toContain('\\Seen');
    const sentBytes = await raw(aliceId, 'Sent', copy.id);
    expect(sentBytes.length).toBe(entry.size);
    expect(withoutTrace(await raw(bobId, 'INBOX', delivered.id)).equals(sentBytes)).toBe(true);

    const listed = (await call({ method: 'GET', url: `/v1/accounts/${aliceId}/outbox` })).json() as { outbox: OutboxEntryView[] };
    expect(listed.outbox.map((e) => e.queueId)).toContain(receipt.queueId);

    // The outcome is an event of the account's log, so it reaches SSE streams and webhooks.
    const sentEvent = await eventOf(aliceId, 'message.sent', receipt.queueId);
    expect(sentEvent).toMatchObject({ account: aliceId, mailbox: null, messageId: receipt.messageId, permanent: false, response: expect.stringMatching(/^250 /) });
  });

  it('sends a 3 MB attachment read from the body as it arrives and staged in the outbox, byte-exact to the INBOX and Sent', async () => {
    const content = randomBytes(3 * 1024 * 1024 + 5);
    // Base64 as MIME writes it (76-character lines) and a JSON encoder that escapes "/" (PHP's does):
    // both are base64 as API.md means it, and the body is parsed as it arrives (over 1 MB).
    const base64 = content.toString('base64').replace(/.{76}/g, '$&\\r\\n');
    const json = JSON.stringify({ to: [{ address: mta.address(bob.username) }], subject: 'A large attachment', text: 'See the attachment.', attachments: [{ filename: 'big.bin', content: '@@' }] })
      .replace('"@@"', `"${base64.replace(/\//g, '\\/')}"`);
    const res = await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: json, headers: { 'content-type': 'application/json' } });
    expect(res.statusCode, res.body).toBe(202);
    const receipt = res.json() as { queueId: string; messageId: string };
    const entry = await entryOnce(aliceId, receipt.queueId, final, 30_000);
    expect(entry).toMatchObject({ status: 'sent', sentCopy: 'saved' });
    expect(entry.size).toBeGreaterThan(content.length * 1.3);

    const delivered = await messageArrives(bobId, 'INBOX', receipt.messageId);
    const detail = (await call({ method: 'GET', url: `/v1/accounts/${bobId}/mailboxes/INBOX/messages/${delivered.id}` })).json() as { attachments: Array<{ id: string; size: number }> };
    const download = await call({ method: 'GET', url: `/v1/accounts/${bobId}/mailboxes/INBOX/messages/${delivered.id}/attachments/${detail.attachments[0]!.id}` });
    expect(download.statusCode).toBe(200);
    expect(download.rawPayload.equals(content)).toBe(true);
    const copy = await messageArrives(aliceId, 'Sent', receipt.messageId);
    const sentBytes = await raw(aliceId, 'Sent', copy.id);
    expect(sentBytes.length).toBe(entry.size);
    expect(withoutTrace(await raw(bobId, 'INBOX', delivered.id)).equals(sentBytes)).toBe(true);
    expect(await storedBytes()).toEqual([]);
  });

  it('refuses a large message over MAX_UPLOAD_BYTES once composed with 413, keeping none of what was staged', async () => {
    const limited = await startGateway({ ...storeEnv, MAX_UPLOAD_BYTES: String(1_500_000) });
    try {
      const id = await createImapAccount(limited.app, dovecot, alice, { email: mta.address(alice.username), smtp: smtpSettings(alice) });
      // 1.2 MB of attachment: under the limit as bytes, over it once composed in base64 (about 1.65 MB).
      const res = await limited.app.inject({
        method: 'POST',
        url: `/v1/accounts/${id}/send`,
        payload: { to: [{ address: mta.address(bob.username) }], attachments: [{ filename: 'a.bin', content: randomBytes(1_200_000).toString('base64') }] },
      });
      expect(expectProblem(res, 413, 'PAYLOAD_TOO_LARGE').detail).toMatch(/MAX_UPLOAD_BYTES/);
      expect(((await limited.app.inject({ method: 'GET', url: `/v1/accounts/${id}/outbox` })).json() as { outbox: unknown[] }).outbox).toEqual([]);
      const left = redisServer === undefined ? await readdir(path.join(limited.dataDir, 'outbox', 'raw')) : await storedBytes();
      expect(left).toEqual([]);
    } finally {
      await limited.close();
    }
  });

  it('threads a reply (In-Reply-To, References, Re:, recipients without the account itself) and flags the original \\Answered', async () => {
    const first = await send(aliceId, { to: [{ address: mta.address(bob.username) }], cc: [{ address: mta.address(carol.username) }], subject: 'Plans' });
    await entryOnce(aliceId, first.queueId, final);
    const original = await messageArrives(bobId, 'INBOX', first.messageId);
    // Bob answers all from his own account: to alice (From) and carol (Cc), not to himself.
    const smtpRes = await call({ method: 'PATCH', url: `/v1/accounts/${bobId}`, payload: { smtp: smtpSettings(bob) } });
    expect(smtpRes.statusCode, smtpRes.body).toBe(200);
    const reply = await send(bobId, { reference: { mailbox: 'INBOX', id: original.id, action: 'replyAll' }, text: 'Sounds good.' });
    const entry = await entryOnce(bobId, reply.queueId, final);
    expect(entry.status).toBe('sent');
    expect(entry.recipients.map((r) => r.address).sort()).toEqual([mta.address(alice.username), mta.address(carol.username)].sort());

    const atAlice = await messageArrives(aliceId, 'INBOX', reply.messageId);
    expect(atAlice.subject).toBe('Re: Plans');
    const detail = (await call({ method: 'GET', url: `/v1/accounts/${aliceId}/mailboxes/INBOX/messages/${atAlice.id}` })).json() as { inReplyTo: string; references: string[] };
    expect(detail.inReplyTo).toBe(first.messageId);
    expect(detail.references).toEqual([first.messageId]);
    await messageArrives(carolId, 'INBOX', reply.messageId);
    const flagged = (await call({ method: 'GET', url: `/v1/accounts/${bobId}/mailboxes/INBOX/messages/${original.id}` })).json() as { flags: string[] };
    expect(flagged.flags).toContain('\\Answered');
  });

  it('forwards with the original attached as message/rfc822, byte for byte, and flags the original $Forwarded', async () => {
    const first = await send(aliceId, { to: [{ address: mta.address(bob.username) }], subject: 'Forward me', text: 'original body' });
    await entryOnce(aliceId, first.queueId, final);
    const original = await messageArrives(bobId, 'INBOX', first.messageId);
    const originalBytes = await raw(bobId, 'INBOX', original.id);
    const forward = await send(bobId, { reference: { mailbox: 'INBOX', id: original.id, action: 'forward' }, to: [{ address: mta.address(carol.username) }], text: 'FYI' });
    expect((await entryOnce(bobId, forward.queueId, final)).status).toBe('sent');
    const atCarol = await messageArrives(carolId, 'INBOX', forward.messageId);
    expect(atCarol.subject).toBe('Fwd: Forward me');
    const detail = (await call({ method: 'GET', url: `/v1/accounts/${carolId}/mailboxes/INBOX/messages/${atCarol.id}` })).json() as {
      attachments: Array<{ id: string; contentType: string }>;
    };
    const attached = detail.attachments.find((a) => a.contentType === 'message/rfc822');
    expect(attached).toBeDefined();
    const download = await call({ method: 'GET', url: `/v1/accounts/${carolId}/mailboxes/INBOX/messages/${atCarol.id}/attachments/${attached!.id}` });
    expect(download.statusCode).toBe(200);
    expect(download.rawPayload.toString('latin1').replace(/\r?\n$/, '')).toBe(originalBytes.toString('latin1').replace(/\r?\n$/, ''));
    const flagged = (await call({ method: 'GET', url: `/v1/accounts/${bobId}/mailboxes/INBOX/messages/${original.id}` })).json() as { flags: string[] };
    expect(flagged.flags).toContain('$Forwarded');
  });

  it('never downgrades STARTTLS: a server that offers none is refused at save', async () => {
    const res = await call({ method: 'PATCH', url: `/v1/accounts/${carolId}`, payload: { smtp: smtpSettings(carol, { security: 'starttls' }) } });
    expect(expectProblem(res, 502, 'UPSTREAM_ERROR').detail).toMatch(/STARTTLS|TLS/i);
    expect(((await call({ method: 'GET', url: `/v1/accounts/${carolId}` })).json() as { smtp: unknown }).smtp).toBeNull();
  });

  it('needs the send scope to send or cancel, and read to see the outbox', async () => {
    const token = async (scopes: string[]) => {
      const res = await call({ method: 'POST', url: '/v1/tokens', payload: { accounts: [aliceId], scopes } });
      expect(res.statusCode, res.body).toBe(201);
      return { authorization: `Bearer ${(res.json() as { token: string }).token}` };
    };
    const reader = await token(['read']);
    const sender = await token(['send']);
    const body = { to: [{ address: mta.address(bob.username) }], subject: 'scoped', text: 'x' };
    expectProblem(await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: body, headers: reader }), 403, 'FORBIDDEN');
    const ok = await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: body, headers: sender });
    expect(ok.statusCode, ok.body).toBe(202);
    const { queueId } = ok.json() as { queueId: string };
    expect((await call({ method: 'GET', url: `/v1/accounts/${aliceId}/outbox/${queueId}`, headers: reader })).statusCode).toBe(200);
    expectProblem(await call({ method: 'GET', url: `/v1/accounts/${aliceId}/outbox`, headers: sender }), 403, 'FORBIDDEN');
    expectProblem(await call({ method: 'DELETE', url: `/v1/accounts/${aliceId}/outbox/${queueId}`, headers: reader }), 403, 'FORBIDDEN');
    // Another account does not exist for these tokens.
    expectProblem(await call({ method: 'POST', url: `/v1/accounts/${bobId}/send`, payload: body, headers: sender }), 404, 'ACCOUNT_NOT_FOUND');
    await entryOnce(aliceId, queueId, final);
  });

  it('counts queued and sent messages in /metrics', async () => {
    const text = (await call({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/^mailgw_outbox_messages_total\{outcome="queued"\} [1-9]/m);
    expect(text).toMatch(/^mailgw_outbox_messages_total\{outcome="sent"\} [1-9]/m);
    expect(text).toMatch(/^mailgw_smtp_attempt_duration_seconds_count [1-9]/m);
    expect(text).toMatch(/^mailgw_outbox_depth \d+/m);
  });

  it('fails a recipient the MTA refuses (550) at once, delivers to the others, and says so in message.sent', async () => {
    const receipt = await send(aliceId, { to: [{ address: mta.refused.permanent }, { address: mta.address(carol.username) }], subject: 'partly refused', text: 'x' });
    const entry = await entryOnce(aliceId, receipt.queueId, final);
    expect(entry.status).toBe('sent');
    expect(entry.permanent).toBe(true);
    expect(entry.attempts).toBe(1);
    const byAddress = Object.fromEntries(entry.recipients.map((r) => [r.address, r]));
    expect(byAddress[mta.refused.permanent]).toMatchObject({ status: 'failed', response: expect.stringMatching(/^550 5\.1\.1 /) });
    expect(byAddress[mta.address(carol.username)]).toMatchObject({ status: 'sent' });
    await messageArrives(carolId, 'INBOX', receipt.messageId);

    const only = await send(aliceId, { to: [{ address: mta.refused.permanent }], subject: 'refused', text: 'x' });
    const failed = await entryOnce(aliceId, only.queueId, final);
    expect(failed).toMatchObject({ status: 'failed', permanent: true, attempts: 1, sentCopy: 'skipped' });
    expect(await eventOf(aliceId, 'message.failed', only.queueId)).toMatchObject({ permanent: true, error: expect.stringMatching(/refused/) });
  });

  it('keeps a deferred recipient (451) for a retry with back-off, and a cancel stops it', async () => {
    const receipt = await send(aliceId, { to: [{ address: mta.refused.temporary }], subject: 'deferred', text: 'x' });
    const entry = await entryOnce(aliceId, receipt.queueId, (e) => e.status === 'retrying');
    expect(entry.permanent).toBe(false);
    expect(entry.recipients[0]).toMatchObject({ status: 'deferred', response: expect.stringMatching(/^451 4\.3\.2 /) });
    const wait = Date.parse(entry.nextAttemptAt!) - Date.now();
    expect(wait).toBeGreaterThan(5_000);
    expect(wait).toBeLessThan(12_000);

    expect((await call({ method: 'DELETE', url: `/v1/accounts/${aliceId}/outbox/${receipt.queueId}` })).statusCode).toBe(204);
    const cancelled = (await call({ method: 'GET', url: `/v1/accounts/${aliceId}/outbox/${receipt.queueId}` })).json() as OutboxEntryView;
    expect(cancelled).toMatchObject({ status: 'cancelled', nextAttemptAt: null });
    expect(expectProblem(await call({ method: 'DELETE', url: `/v1/accounts/${aliceId}/outbox/${receipt.queueId}` }), 404, 'OUTBOX_ENTRY_NOT_FOUND').detail).toMatch(/cancelled/);
    expectProblem(await call({ method: 'GET', url: `/v1/accounts/${aliceId}/outbox/q_doesnotexist0` }), 404, 'OUTBOX_ENTRY_NOT_FOUND');
  });

  it('answers the same Idempotency-Key with the first receipt and sends once', async () => {
    const key = `order-${Date.now()}`;
    const body = { to: [{ address: mta.address(carol.username) }], subject: 'once only', text: 'x' };
    const first = await send(aliceId, body, { 'idempotency-key': key });
    const again = await send(aliceId, body, { 'idempotency-key': key });
    expect(again.queueId).toBe(first.queueId);
    expect(again.messageId).toBe(first.messageId);
    expect(again.headers['idempotent-replayed']).toBe('true');
    await entryOnce(aliceId, first.queueId, final);
    await messageArrives(carolId, 'INBOX', first.messageId);
    const listing = (await call({ method: 'GET', url: `/v1/accounts/${carolId}/mailboxes/INBOX/messages?limit=100` })).json() as { messages: Summary[] };
    expect(listing.messages.filter((m) => m.messageId === first.messageId)).toHaveLength(1);
  });

  it('sends a raw message/rfc822 as it is, Bcc removed, recipients from its header fields', async () => {
    const messageId = `<raw-${Date.now()}@example.com>`;
    const message = Buffer.from(
      [
        `From: Alice <${mta.address(alice.username)}>`,
        `To: ${mta.address(bob.username)}`,
        `Bcc: ${mta.address(carol.username)}`,
        'Subject: raw one',
        `Message-ID: ${messageId}`,
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'bytes as they are',
        '',
      ].join('\r\n'),
    );
    const res = await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: message, headers: { 'content-type': 'message/rfc822' } });
    expect(res.statusCode, res.body).toBe(202);
    expect((res.json() as { messageId: string }).messageId).toBe(messageId);
    const entry = await entryOnce(aliceId, (res.json() as { queueId: string }).queueId, final);
    expect(entry.recipients.map((r) => r.address).sort()).toEqual([mta.address(bob.username), mta.address(carol.username)].sort());
    const atCarol = await messageArrives(carolId, 'INBOX', messageId);
    const bytes = withoutTrace(await raw(carolId, 'INBOX', atCarol.id)).toString('latin1');
    expect(bytes).not.toMatch(/^Bcc:/im);
    expect(bytes).toBe(message.toString('latin1').replace(`Bcc: ${mta.address(carol.username)}\r\n`, ''));
  });

  it('answers bad bodies with 400 naming the field, and a POP3 account sends without a Sent copy', async () => {
    expect(expectProblem(await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: { to: [{ address: 'not an address' }], text: 'x' } }), 400, 'VALIDATION_FAILED').detail).toMatch(/to\/0\/address/);
    expect(expectProblem(await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: { to: [{ address: mta.address(bob.username) }], attachments: [{ content: '@@@' }] } }), 400, 'VALIDATION_FAILED').detail).toMatch(/attachments\/0\/content/);
    expect(expectProblem(await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: { text: 'nobody to send to' } }), 400, 'VALIDATION_FAILED').detail).toMatch(/to/);
    expectProblem(await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: { to: [{ address: mta.address(bob.username) }], bogus: 1 } }), 400, 'VALIDATION_FAILED');
    // The same checks on a body large enough to be parsed as it arrives.
    const large = `${'A'.repeat(1_500_000)}@`;
    const streamed = await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: { to: [{ address: mta.address(bob.username) }], attachments: [{ content: large }] } });
    expect(expectProblem(streamed, 400, 'VALIDATION_FAILED').detail).toBe('body/attachments/0/content is not base64');
    const notJson = await call({ method: 'POST', url: `/v1/accounts/${aliceId}/send`, payload: `{"to": [${' '.repeat(1_500_000)}}`, headers: { 'content-type': 'application/json' } });
    expect(expectProblem(notJson, 400, 'VALIDATION_FAILED').detail).toMatch(/^body is not valid JSON/);

    const popId = await createPop3Account(gw.app, dovecot, carol);
    const patched = await call({ method: 'PATCH', url: `/v1/accounts/${popId}`, payload: { email: mta.address(carol.username), smtp: smtpSettings(carol) } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect((patched.json() as { capabilities: string[] }).capabilities).toContain('send');
    const receipt = await send(popId, { to: [{ address: mta.address(bob.username) }], subject: 'from pop3', text: 'x' });
    const entry = await entryOnce(popId, receipt.queueId, final);
    expect(entry).toMatchObject({ status: 'sent', sentCopy: 'skipped' });
    await messageArrives(bobId, 'INBOX', receipt.messageId);
  });
});
