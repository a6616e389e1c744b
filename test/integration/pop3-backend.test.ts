/**
 * The POP3 backend and client against the run's real Dovecot (POP3 on the plain port with STLS
 * offered, and on the implicit-TLS port): logins in every security mode, listing and paging, every
 * corpus message byte-exact, a message over 20 MB, delete committed by QUIT, concurrent requests on one
 * maildrop, cached headers. The backend is built directly (no HTTP), with an in-memory cache.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/cache/keys.js';
import { MemoryCache } from '../../src/cache/memory-cache.js';
import { GatewayError } from '../../src/errors.js';
import type { MailAccount } from '../../src/mail/account.js';
import { decodeMessageId, encodePop3MessageId, type MessageRef } from '../../src/mail/message-id.js';
import { Pop3Backend, type Pop3BackendOptions } from '../../src/mail/pop3/backend.js';
import { Pop3Client } from '../../src/mail/pop3/client.js';
import type { MessagePage, MessageSummary } from '../../src/mail/types.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { readAll, rejection } from '../support/assertions.js';
import { corpusFiles, readCorpus } from '../support/corpus.js';
import { messageWithAttachment, textMessage } from '../support/messages.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot } = testServers();
const accounts = new Map<string, MailAccount>();
const backends: Pop3Backend[] = [];

function makeBackend(extra: Partial<Pop3BackendOptions> = {}): Pop3Backend {
  const backend = new Pop3Backend({
    resolveAccount: async (id) => {
      const account = accounts.get(id);
      if (account === undefined) throw new GatewayError('ACCOUNT_NOT_FOUND', `no account ${id}`);
      return account;
    },
    egress: createEgressPolicy(['127.0.0.1/32']),
    cache: new MemoryCache(64 * 1024 * 1024),
    upstreamTimeoutMs: 10_000,
    acquireTimeoutMs: 10_000,
    headerCacheTtlSeconds: 3600,
    tlsCa: dovecot.caPem,
    log: pino({ level: 'silent' }),
    ...extra,
  });
  backends.push(backend);
  return backend;
}

function account(id: string, user: DovecotUser, extra: Partial<MailAccount> = {}): MailAccount {
  const value: MailAccount = {
    id,
    protocol: 'pop3',
    host: dovecot.host,
    port: dovecot.pop3Port,
    security: 'none',
    username: user.username,
    credentials: { password: user.password },
    tlsVerify: true,
    ...extra,
  };
  accounts.set(id, value);
  return value;
}

async function page(backend: Pop3Backend, id: string, limit: number, cursor?: string): Promise<MessagePage> {
  const result = await backend.listMessages(id, 'INBOX', { limit, cursor });
  if (!('messages' in result)) throw new Error('expected a page of messages');
  return result;
}

/** Dovecot serves POP3 with CRLF line ends: every bare LF of the stored file becomes CRLF. */
function crlfNormalised(file: Buffer): Buffer {
  return Buffer.from(file.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

afterAll(async () => {
  await Promise.all(backends.map((b) => b.close()));
});

describe('logins', () => {
  let user: DovecotUser;
  beforeAll(async () => {
    user = await dovecot.createUser('p3login');
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'hello' })]);
  });

  it('logs in over plain, STLS and implicit TLS (certificate verified), and lists', async () => {
    const backend = makeBackend();
    const modes: Array<Partial<MailAccount>> = [
      { security: 'none' },
      { security: 'starttls' },
      { security: 'tls', port: dovecot.pop3sPort },
    ];
    for (const [i, mode] of modes.entries()) {
      const acc = account(`login-${i}`, user, mode);
      expect(await backend.verify(acc)).toEqual([]);
      const result = await page(backend, acc.id, 10);
      expect(result.messages.map((m) => m.subject)).toEqual(['hello']);
    }
    expect(backend.capabilities('login-0')).toEqual([]);
  });

  it('upgrades with STLS and uses the mechanism CAPA offers; USER/PASS works too', async () => {
    const client = await Pop3Client.connect({
      host: '127.0.0.1',
      port: dovecot.pop3Port,
      security: 'starttls',
      tlsVerify: true,
      ca: dovecot.caPem,
      timeoutMs: 5_000,
    });
    expect(client.secure).toBe(true);
    expect(client.capabilities?.get('SASL')).toContain('PLAIN');
    expect(await client.login(user.username, { password: user.password })).toBe('PLAIN');
    expect((await client.stat()).count).toBe(1);
    await client.quit();

    const plain = await Pop3Client.connect({ host: '127.0.0.1', port: dovecot.pop3Port, security: 'none', tlsVerify: true, timeoutMs: 5_000 });
    await plain.userPass(user.username, user.password);
    expect((await plain.uidl()).length).toBe(1);
    await plain.quit();
  });

  it('refuses a wrong password with UPSTREAM_AUTH_FAILED and a bad certificate with UPSTREAM_ERROR', async () => {
    const backend = makeBackend();
    const wrong = account('login-wrong', user, { credentials: { password: 'not-the-password' } });
    expect((await rejection(backend.verify(wrong))).code).toBe('UPSTREAM_AUTH_FAILED');
    const untrusted = makeBackend({ tlsCa: undefined });
    const tlsAccount = account('login-untrusted', user, { security: 'tls', port: dovecot.pop3sPort });
    const err = await rejection(untrusted.verify(tlsAccount));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect(err.message).toMatch(/TLS/);
  });
});

describe('listing and paging', () => {
  let user: DovecotUser;
  let backend: Pop3Backend;
  beforeAll(async () => {
    user = await dovecot.createUser('p3list');
    await dovecot.seedMaildir(
      user.username,
      Array.from({ length: 7 }, (_, i) => textMessage({ subject: `m${i + 1}`, date: new Date(Date.UTC(2024, 0, 10 - i)) })),
    );
    backend = makeBackend({ sessionReuseMs: 100 });
    account('list', user);
  });

  it('lists newest first (arrival order) in pages that follow the cursor, with one state', async () => {
    const first = await page(backend, 'list', 3);
    expect(first.messages.map((m) => m.subject)).toEqual(['m7', 'm6', 'm5']);
    expect(first.total).toBe(7);
    expect(first.nextCursor).not.toBeNull();
    const summary = first.messages[0]!;
    expect(summary).toMatchObject({ flags: [], seen: false, flagged: false, hasAttachments: null, preview: null, receivedAt: null });
    expect(summary.uid).toBeUndefined();
    expect(summary.from).toEqual([{ name: 'Sender', address: 'sender@example.com' }]);
    expect(summary.date).toBe('2024-01-04T00:00:00.000Z');
    expect(decodeMessageId(summary.id).kind).toBe('pop3');

    const second = await page(backend, 'list', 3, first.nextCursor!);
    expect(second.messages.map((m) => m.subject)).toEqual(['m4', 'm3', 'm2']);
    const third = await page(backend, 'list', 3, second.nextCursor!);
    expect(third.messages.map((m) => m.subject)).toEqual(['m1']);
    expect(third.nextCursor).toBeNull();
    expect(new Set([first.state, second.state, third.state]).size).toBe(1);

    const unchanged = await backend.listMessages('list', 'inbox', { limit: 3, cursor: undefined, ifNoneMatch: first.state });
    expect(unchanged).toEqual({ notModified: true, state: first.state });

    expect((await rejection(backend.listMessages('list', 'Archive', { limit: 3, cursor: undefined }))).code).toBe('MAILBOX_NOT_FOUND');
    expect((await rejection(backend.listMessages('list', 'INBOX', { limit: 3, cursor: 'bm9wZQ' }))).code).toBe('VALIDATION_FAILED');
  });

  it('keeps paging right when mail arrives and when the anchor itself is deleted between pages', async () => {
    const first = await page(backend, 'list', 2);
    expect(first.messages.map((m) => m.subject)).toEqual(['m7', 'm6']);
    // New mail arrives (a new login is needed to see it), and the anchor m6 is deleted.
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'm8' })]);
    await backend.deleteMessage('list', 'INBOX', decodeMessageId(first.messages[1]!.id));
    await sleep(150);
    const second = await page(backend, 'list', 2, first.nextCursor!);
    expect(second.messages.map((m) => m.subject)).toEqual(['m5', 'm4']);
    expect(second.state).not.toBe(first.state);
    expect(second.total).toBe(7);
    const fresh = await page(backend, 'list', 2);
    expect(fresh.messages.map((m) => m.subject)).toEqual(['m8', 'm7']);
  });

  it('answers the mailbox list with INBOX only, counted on request', async () => {
    expect(await backend.listMailboxes('list', { counts: false })).toEqual([
      { path: 'INBOX', name: 'INBOX', delimiter: null, parent: null, specialUse: null, specialUseSource: null, subscribed: true, flags: [] },
    ]);
    const [inbox] = await backend.listMailboxes('list', { counts: true });
    expect(inbox?.counts).toEqual({ messages: 7, unseen: 7, uidNext: null, uidValidity: null });
  });

  it('serves a repeated listing from cached headers: UIDL and LIST only, no TOP', async () => {
    const user2 = await dovecot.createUser('p3cache');
    await dovecot.seedMaildir(user2.username, Array.from({ length: 5 }, (_, i) => textMessage({ subject: `c${i}` })));
    const counting = makeBackend({ sessionReuseMs: 50 });
    account('cache', user2);
    const before = await page(counting, 'cache', 50);
    expect(counting.commandCounts()).toMatchObject({ UIDL: 1, LIST: 1, TOP: 5 });
    await sleep(100); // past the reuse window: the next listing logs in anew
    const after = await page(counting, 'cache', 50);
    expect(after).toEqual(before);
    expect(counting.commandCounts()).toMatchObject({ UIDL: 2, LIST: 2, TOP: 5 });
    expect(counting.sessionStats().opened).toBe(2);
  });
});

describe('messages', () => {
  let user: DovecotUser;
  let backend: Pop3Backend;
  const files = corpusFiles();
  let summaries: MessageSummary[] = [];

  beforeAll(async () => {
    user = await dovecot.createUser('p3corpus');
    await dovecot.seedMaildir(user.username, files.map(readCorpus));
    backend = makeBackend();
    account('corpus', user);
    summaries = (await page(backend, 'corpus', 200)).messages.reverse(); // oldest first = seed order
    expect(summaries).toHaveLength(files.length);
  });

  it('serves every corpus message byte-exact: the stored bytes with bare LF as CRLF, as LIST counts them', async () => {
    const client = await Pop3Client.connect({ host: '127.0.0.1', port: dovecot.pop3Port, security: 'none', tlsVerify: true, timeoutMs: 5_000 });
    await client.login(user.username, { password: user.password });
    const list = await client.list();
    for (const [i, file] of files.entries()) {
      const stored = readCorpus(file);
      const expected = crlfNormalised(stored);
      const summary = summaries[i]!;
      expect(summary.size, file).toBe(expected.length);
      expect(list[i]!.size, file).toBe(expected.length);

      const raw = await backend.openRaw('corpus', 'INBOX', decodeMessageId(summary.id));
      expect(raw.size, file).toBe(expected.length);
      expect(raw.range).toEqual({ start: 0, end: expected.length });
      const bytes = await readAll(raw.stream);
      expect(bytes.equals(expected), file).toBe(true);

      // On the wire the last line always ends in CRLF (RFC 1939 §3): a file without a final line end
      // gets one added, which LIST does not count and the backend's raw does not serve.
      const { stream } = await client.retr(i + 1);
      const wire = await readAll(stream);
      const endsWithLineEnd = stored.length > 0 && stored[stored.length - 1] === 0x0a;
      expect(wire.equals(endsWithLineEnd ? expected : Buffer.concat([expected, Buffer.from('\r\n')])), file).toBe(true);
    }
    await client.quit();
  });

  it('serves a byte range of a message, and MESSAGE_NOT_FOUND for a UIDL the maildrop does not have', async () => {
    const summary = summaries[0]!;
    const whole = await readAll((await backend.openRaw('corpus', 'INBOX', decodeMessageId(summary.id))).stream);
    const raw = await backend.openRaw('corpus', 'INBOX', decodeMessageId(summary.id), (size) => ({ start: 10, end: Math.min(size, 60) }));
    expect((await readAll(raw.stream)).equals(whole.subarray(10, 60))).toBe(true);
    const missing: MessageRef = { kind: 'pop3', uidl: 'no-such-uidl' };
    expect((await rejection(backend.openRaw('corpus', 'INBOX', missing))).code).toBe('MESSAGE_NOT_FOUND');
    expect((await rejection(backend.getSummary('corpus', 'INBOX', missing, { markSeen: false }))).code).toBe('MESSAGE_NOT_FOUND');
    expect((await rejection(backend.getSummary('corpus', 'INBOX', decodeMessageId(summary.id), { markSeen: true }))).code).toBe(
      'NOT_SUPPORTED_BY_PROTOCOL',
    );
    const ref = decodeMessageId(summary.id);
    expect(ref.kind === 'pop3' && backend.parsedCacheKey('corpus', 'INBOX', ref)).toBe(keys.pop3Message('corpus', ref.kind === 'pop3' ? ref.uidl : ''));
  });
});

describe('a message over 20 MB', () => {
  let backend: Pop3Backend;
  let id: string;
  let message: Buffer | undefined;
  let messageSha: string;
  let attachmentSha: string;
  let size: number;

  beforeAll(async () => {
    const user = await dovecot.createUser('p3large');
    const content = randomBytes(21 * 1024 * 1024);
    attachmentSha = sha(content);
    message = messageWithAttachment({ subject: 'Large', filename: 'random.bin', content });
    messageSha = sha(message);
    size = message.length;
    await dovecot.seedMaildir(user.username, [message]);
    backend = makeBackend();
    account('large', user);
    const listing = await page(backend, 'large', 10);
    id = listing.messages[0]!.id;
    expect(listing.messages[0]!.size).toBe(size);
  });

  it('streams it byte-exact, a range deep inside it, and its attachment decoded', async () => {
    const raw = await backend.openRaw('large', 'INBOX', decodeMessageId(id));
    const hash = createHash('sha256');
    let length = 0;
    for await (const chunk of raw.stream) {
      hash.update(chunk as Buffer);
      length += (chunk as Buffer).length;
    }
    expect(length).toBe(size);
    expect(hash.digest('hex')).toBe(messageSha);

    const start = 20 * 1024 * 1024 + 12345;
    const ranged = await backend.openRaw('large', 'INBOX', decodeMessageId(id), () => ({ start, end: start + 1000 }));
    expect((await readAll(ranged.stream)).equals(message!.subarray(start, start + 1000))).toBe(true);

    const part = await backend.openPart('large', 'INBOX', decodeMessageId(id), '2');
    expect(sha(await readAll(part.stream))).toBe(attachmentSha);
    // The session survived all three (drained or renewed as needed) and still answers.
    expect((await page(backend, 'large', 10)).total).toBe(1);
  });

  it('drops the session, not the next request, when a reader abandons the download early', async () => {
    const raw = await backend.openRaw('large', 'INBOX', decodeMessageId(id));
    const openedBefore = backend.sessionStats().opened;
    for await (const _chunk of raw.stream) break; // read one chunk, then go away
    const listing = await page(backend, 'large', 10);
    expect(listing.total).toBe(1);
    // ~21 MB were left: dropping the session (no QUIT) and logging in again beats draining them.
    expect(backend.sessionStats().opened).toBe(openedBefore + 1);
    expect(backend.sessionStats().live).toBeLessThanOrEqual(1);
  });
});

describe('delete', () => {
  it('commits DELE with QUIT before resolving (checked by a fresh session and doveadm)', async () => {
    const user = await dovecot.createUser('p3dele');
    await dovecot.seedMaildir(user.username, ['a', 'b', 'c'].map((subject) => textMessage({ subject })));
    const backend = makeBackend();
    account('dele', user);
    const listing = await page(backend, 'dele', 10);
    const b = listing.messages.find((m) => m.subject === 'b')!;
    await backend.deleteMessage('dele', 'INBOX', decodeMessageId(b.id));

    const client = await Pop3Client.connect({ host: '127.0.0.1', port: dovecot.pop3Port, security: 'none', tlsVerify: true, timeoutMs: 5_000 });
    await client.login(user.username, { password: user.password });
    const uidls = (await client.uidl()).map((e) => encodePop3MessageId(e.uidl));
    await client.quit();
    expect(uidls).toHaveLength(2);
    expect(uidls).not.toContain(b.id);
    const status = await dovecot.doveadm(['mailbox', 'status', '-u', user.username, 'messages', 'INBOX']);
    expect(status.trim()).toMatch(/(^|\s)messages=2$/);

    expect((await rejection(backend.deleteMessage('dele', 'INBOX', decodeMessageId(b.id)))).code).toBe('MESSAGE_NOT_FOUND');
    expect((await page(backend, 'dele', 10)).messages.map((m) => m.subject)).toEqual(['c', 'a']);
  });
});

describe('one maildrop, many requests', () => {
  it('serialises concurrent requests on one session at a time, each answer right', async () => {
    const user = await dovecot.createUser('p3conc');
    const messages = Array.from({ length: 6 }, (_, i) =>
      textMessage({ subject: `k${i}`, body: `${'line of text\r\n'.repeat(2000 + i * 100)}.dot-led line ${i}` }),
    );
    await dovecot.seedMaildir(user.username, messages);
    const backend = makeBackend({ sessionReuseMs: 300 });
    // Two accounts on the same maildrop share its turn.
    account('conc-a', user);
    account('conc-b', user);
    const listing = await page(backend, 'conc-a', 10);
    const byId = new Map(listing.messages.map((m, i) => [m.id, messages[messages.length - 1 - i]!]));

    const work: Array<Promise<void>> = [];
    for (let round = 0; round < 4; round++) {
      for (const [id, expected] of byId) {
        const acc = round % 2 === 0 ? 'conc-a' : 'conc-b';
        work.push(
          backend.openRaw(acc, 'INBOX', decodeMessageId(id)).then(async (raw) => {
            expect((await readAll(raw.stream)).equals(expected)).toBe(true);
          }),
        );
      }
      work.push(page(backend, 'conc-b', 3).then((p) => expect(p.messages.map((m) => m.subject)).toEqual(['k5', 'k4', 'k3'])));
      work.push(
        backend.getSummary('conc-a', 'INBOX', decodeMessageId(listing.messages[2]!.id), { markSeen: false }).then((s) => {
          expect(s.subject).toBe('k3');
        }),
      );
    }
    await Promise.all(work);
    const stats = backend.sessionStats();
    expect(stats.maxLivePerMaildrop).toBe(1);
    expect(stats.waiting).toBe(0);
    // Sessions were handed on while young (and the two accounts got their own logins).
    expect(stats.opened).toBeLessThan(work.length);
  });

  it('answers POOL_EXHAUSTED when the maildrop stays busy past the wait bound', async () => {
    const user = await dovecot.createUser('p3busy');
    const big = textMessage({ subject: 'big', body: 'x'.repeat(8 * 1024 * 1024) });
    await dovecot.seedMaildir(user.username, [big]);
    const backend = makeBackend({ acquireTimeoutMs: 300 });
    account('busy', user);
    const [summary] = (await page(backend, 'busy', 1)).messages;
    const held = await backend.openRaw('busy', 'INBOX', decodeMessageId(summary!.id)); // not read: holds the session
    const started = Date.now();
    const err = await rejection(page(backend, 'busy', 1));
    expect(err.code).toBe('POOL_EXHAUSTED');
    expect(err.retryAfterSeconds).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await readAll(held.stream)).equals(big)).toBe(true);
    expect((await page(backend, 'busy', 1)).total).toBe(1);
  });
});
