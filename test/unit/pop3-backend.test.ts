/**
 * The POP3 backend against a fake maildrop server, for faults a real Dovecot cannot be made to show:
 * a connection closed in the middle of RETR (clean error, nothing deleted, no QUIT), a server that goes
 * silent (UPSTREAM_TIMEOUT within the bound, the session dropped), `-ERR [IN-USE]` at login, a QUIT
 * that fails after DELE, a server without TOP. Happy paths are tested against Dovecot.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryCache } from '../../src/cache/memory-cache.js';
import { encodePop3MessageId, decodeMessageId } from '../../src/mail/message-id.js';
import { Pop3Backend, type Pop3BackendOptions } from '../../src/mail/pop3/backend.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { readAll, rejection } from '../support/assertions.js';

interface FakeMessage {
  uidl: string;
  body: string;
}

/** What the fake does with a command; return false to fall through to the normal answer. */
type Override = (line: string, socket: net.Socket, connection: number) => boolean | Promise<boolean>;

interface FakeMaildrop {
  port: number;
  /** Every command received, as `<connection>:<line>`. */
  commands: string[];
  accepted: number;
  messages: FakeMessage[];
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function stuffed(body: string): string {
  return body.replace(/^\./gm, '..');
}

async function fakeMaildrop(messages: FakeMessage[], override: Override = () => false, caps = ['USER', 'UIDL', 'TOP']): Promise<FakeMaildrop> {
  const commands: string[] = [];
  const sockets = new Set<net.Socket>();
  const state = { accepted: 0 };
  const server = net.createServer((socket) => {
    const connection = ++state.accepted;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('+OK fake ready\r\n');
    const deleted = new Set<number>();
    let buffer = '';
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let i: number;
      while ((i = buffer.indexOf('\r\n')) !== -1) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        commands.push(`${connection}:${line}`);
        chain = chain.then(async () => {
          if (await override(line, socket, connection)) return;
          answer(line, socket, deleted);
        });
      }
    });
  });
  function answer(line: string, socket: net.Socket, deleted: Set<number>): void {
    const [verb = '', arg] = line.split(' ');
    const n = Number(arg);
    const msg = messages[n - 1];
    switch (verb.toUpperCase()) {
      case 'CAPA':
        return void socket.write(`+OK\r\n${caps.join('\r\n')}\r\n.\r\n`);
      case 'USER':
      case 'PASS':
      case 'NOOP':
        return void socket.write('+OK\r\n');
      case 'UIDL':
        return void socket.write(`+OK\r\n${messages.map((m, j) => `${j + 1} ${m.uidl}\r\n`).join('')}.\r\n`);
      case 'LIST':
        return void socket.write(`+OK\r\n${messages.map((m, j) => `${j + 1} ${Buffer.byteLength(m.body, 'latin1')}\r\n`).join('')}.\r\n`);
      case 'TOP': {
        if (!msg) return void socket.write('-ERR no such message\r\n');
        const header = msg.body.slice(0, msg.body.indexOf('\r\n\r\n') + 4);
        return void socket.write(`+OK\r\n${stuffed(header)}.\r\n`);
      }
      case 'RETR':
        if (!msg) return void socket.write('-ERR no such message\r\n');
        return void socket.write(`+OK\r\n${stuffed(msg.body)}.\r\n`);
      case 'DELE':
        if (!msg) return void socket.write('-ERR no such message\r\n');
        deleted.add(n);
        return void socket.write('+OK marked\r\n');
      case 'QUIT': {
        // UPDATE state (RFC 1939 §6): only now are the marked messages removed.
        const keep = messages.filter((_, j) => !deleted.has(j + 1));
        messages.splice(0, messages.length, ...keep);
        socket.end('+OK bye\r\n');
        return;
      }
      default:
        return void socket.write('-ERR unknown command\r\n');
    }
  }
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const fake: FakeMaildrop = {
    port: (server.address() as net.AddressInfo).port,
    commands,
    get accepted() {
      return state.accepted;
    },
    messages,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(() => fake.close());
  return fake;
}

function backendFor(fake: FakeMaildrop, extra: Partial<Pop3BackendOptions> = {}): Pop3Backend {
  const backend = new Pop3Backend({
    resolveAccount: async (id) => ({
      id,
      protocol: 'pop3',
      host: '127.0.0.1',
      port: fake.port,
      security: 'none',
      username: 'user',
      credentials: { password: 'secret' },
      tlsVerify: true,
    }),
    egress: createEgressPolicy(['127.0.0.1/32']),
    cache: new MemoryCache(1024 * 1024),
    upstreamTimeoutMs: 2_000,
    acquireTimeoutMs: 2_000,
    headerCacheTtlSeconds: 60,
    log: pino({ level: 'silent' }),
    ...extra,
  });
  cleanups.push(() => backend.close());
  return backend;
}

function message(subject: string, body = 'hello\r\n'): string {
  return `Subject: ${subject}\r\nFrom: a@example.com\r\n\r\n${body}`;
}

const ref = (uidl: string) => decodeMessageId(encodePop3MessageId(uidl));
const after = (fake: FakeMaildrop, connection: number): string[] =>
  fake.commands.filter((c) => c.startsWith(`${connection}:`)).map((c) => c.slice(c.indexOf(':') + 1));

describe('POP3 backend faults', { timeout: 30_000 }, () => {
  it('a close in the middle of RETR fails the download cleanly; no DELE or QUIT is sent, the next request logs in anew', async () => {
    const fake = await fakeMaildrop([{ uidl: 'u1', body: message('cut', 'x'.repeat(5000) + '\r\n') }], async (line, socket, connection) => {
      if (line === 'RETR 1' && connection === 1) {
        socket.write('+OK\r\nSubject: cut\r\n\r\nxxxx');
        await sleep(20);
        socket.destroy();
        return true;
      }
      return false;
    });
    const backend = backendFor(fake);
    const raw = await backend.openRaw('acct', 'INBOX', ref('u1'));
    const err = await rejection(readAll(raw.stream));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect(after(fake, 1)).toEqual(['CAPA', 'USER user', 'PASS secret', 'UIDL', 'LIST', 'RETR 1']);

    const again = await backend.openRaw('acct', 'INBOX', ref('u1'));
    expect((await readAll(again.stream)).toString('latin1')).toBe(fake.messages[0]!.body);
    expect(fake.accepted).toBe(2);
    expect(fake.commands.some((c) => /:(DELE|QUIT)/.test(c) && c.startsWith('1:'))).toBe(false);
  });

  it('a server that goes silent answers UPSTREAM_TIMEOUT within the bound and the session is dropped without QUIT', async () => {
    // LIST on the first connection is never answered.
    const fake = await fakeMaildrop([{ uidl: 'u1', body: message('a') }], (line, _socket, connection) => line === 'LIST' && connection === 1);
    const backend = backendFor(fake, { upstreamTimeoutMs: 300 });
    const started = Date.now();
    const err = await rejection(backend.listMessages('acct', 'INBOX', { limit: 10, cursor: undefined }));
    expect(err.code).toBe('UPSTREAM_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(3_000);
    await sleep(50);
    expect(after(fake, 1)).toEqual(['CAPA', 'USER user', 'PASS secret', 'UIDL', 'LIST']);
    expect(backend.sessionStats().live).toBe(0);
    const page = await backend.listMessages('acct', 'INBOX', { limit: 10, cursor: undefined });
    expect('messages' in page && page.messages.map((m) => m.subject)).toEqual(['a']);
  });

  it('maps a lasting -ERR [IN-USE] at login to POOL_EXHAUSTED with Retry-After, after retrying within the wait bound', async () => {
    let lockedUntilConnection = 1_000;
    const fake = await fakeMaildrop([{ uidl: 'u1', body: message('a') }], (line, socket, connection) => {
      if (line.startsWith('PASS') && connection <= lockedUntilConnection) {
        socket.write('-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n');
        return true;
      }
      return false;
    });
    const backend = backendFor(fake, { acquireTimeoutMs: 1_200 });
    const err = await rejection(backend.listMessages('acct', 'INBOX', { limit: 10, cursor: undefined }));
    expect(err.code).toBe('POOL_EXHAUSTED');
    expect(err.status).toBe(503);
    expect(err.retryAfterSeconds).toBeGreaterThan(0);
    expect(fake.accepted).toBeGreaterThan(1);
    expect(fake.accepted).toBeLessThanOrEqual(4);

    // A lock that goes away while the request may still wait is simply waited out.
    lockedUntilConnection = fake.accepted + 1;
    const page = await backend.listMessages('acct', 'INBOX', { limit: 10, cursor: undefined });
    expect('messages' in page && page.messages).toHaveLength(1);
  });

  it('reports a delete whose QUIT fails as not confirmed, and commits one whose QUIT succeeds', async () => {
    const fake = await fakeMaildrop(
      [
        { uidl: 'u1', body: message('a') },
        { uidl: 'u2', body: message('b') },
      ],
      (line, socket, connection) => {
        if (line === 'QUIT' && connection === 1) {
          // Dropped before answering: the server never entered UPDATE, nothing was removed.
          socket.destroy();
          return true;
        }
        return false;
      },
    );
    const backend = backendFor(fake);
    const err = await rejection(backend.deleteMessage('acct', 'INBOX', ref('u1')));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect(err.message).toMatch(/may still be there/);
    expect(fake.messages.map((m) => m.uidl)).toEqual(['u1', 'u2']);

    await backend.deleteMessage('acct', 'INBOX', ref('u1'));
    expect(fake.messages.map((m) => m.uidl)).toEqual(['u2']);
    expect(after(fake, 2).slice(-2)).toEqual(['DELE 1', 'QUIT']);
  });

  it('lists without headers (and caches nothing) when the server refuses TOP', async () => {
    const fake = await fakeMaildrop([{ uidl: 'u1', body: message('a') }], (line, socket) => {
      if (line.startsWith('TOP')) {
        socket.write('-ERR TOP not supported\r\n');
        return true;
      }
      return false;
    }, ['USER', 'UIDL']);
    const backend = backendFor(fake);
    const page = await backend.listMessages('acct', 'INBOX', { limit: 10, cursor: undefined });
    expect('messages' in page && page.messages[0]).toMatchObject({ subject: null, from: [], size: message('a').length });
    await backend.listMessages('acct', 'INBOX', { limit: 10, cursor: undefined });
    expect(backend.commandCounts().TOP).toBe(2);
  });

  it('refuses listing filters and flags on POP3 with NOT_SUPPORTED_BY_PROTOCOL, and reports no capabilities', async () => {
    const fake = await fakeMaildrop([]);
    const backend = backendFor(fake);
    const err = await rejection(backend.listMessages('acct', 'INBOX', { limit: 10, cursor: undefined, filters: { seen: false } }));
    expect(err.code).toBe('NOT_SUPPORTED_BY_PROTOCOL');
    expect(backend.capabilitiesOf('acct')).toEqual([]);
    expect(fake.accepted).toBe(0);
  });
});
