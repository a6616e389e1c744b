/**
 * The POP3 client against a scripted fake server, for what a real Dovecot cannot be made to do on
 * demand: answers split across packets at every offset, a server that goes silent, a connection
 * closed in the middle of RETR, `-ERR [IN-USE]`, no STLS on offer, a slow reader (backpressure),
 * XOAUTH2. Everything else is tested against the real Dovecot (test/integration/pop3-*.test.ts).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { Pop3Client, type Pop3ClientOptions } from '../../src/mail/pop3/client.js';
import { readAll, rejection } from '../support/assertions.js';

// --- a scripted fake POP3 server --------------------------------------------------------------------

interface FakeConnection {
  socket: net.Socket;
  /** The next command line the client sent (without CRLF). */
  next(): Promise<string>;
  write(data: string | Buffer): void;
  /** Writes and waits until the bytes left this process (backpressure respected). */
  flush(data: string | Buffer): Promise<void>;
}

interface FakeServer {
  port: number;
  /** Every command line received, over all connections, in order. */
  commands: string[];
  close(): Promise<void>;
}

const servers: FakeServer[] = [];
const clients: Pop3Client[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function fakeServer(script: (conn: FakeConnection) => Promise<void>): Promise<FakeServer> {
  const commands: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = '';
    const lines: string[] = [];
    const waiting: Array<(line: string) => void> = [];
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let i: number;
      while ((i = buffer.indexOf('\r\n')) !== -1) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        commands.push(line);
        const w = waiting.shift();
        if (w) w(line);
        else lines.push(line);
      }
    });
    const conn: FakeConnection = {
      socket,
      next: () => {
        const line = lines.shift();
        if (line !== undefined) return Promise.resolve(line);
        return new Promise((resolve) => waiting.push(resolve));
      },
      write: (data) => {
        if (!socket.destroyed) socket.write(data);
      },
      flush: async (data) => {
        if (socket.destroyed) return;
        if (!socket.write(data)) await once(socket, 'drain');
      },
    };
    script(conn).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as net.AddressInfo).port;
  const fake: FakeServer = {
    port,
    commands,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(fake);
  return fake;
}

/** Greeting, CAPA (with `caps`) and USER/PASS, as a server would answer them. */
async function opening(conn: FakeConnection, caps = ['USER', 'UIDL', 'TOP']): Promise<void> {
  conn.write('+OK fake POP3 ready\r\n');
  expect(await conn.next()).toBe('CAPA');
  conn.write(`+OK\r\n${caps.join('\r\n')}\r\n.\r\n`);
}

async function userPass(conn: FakeConnection): Promise<void> {
  expect(await conn.next()).toMatch(/^USER /);
  conn.write('+OK\r\n');
  expect(await conn.next()).toMatch(/^PASS /);
  conn.write('+OK logged in\r\n');
}

async function connect(server: FakeServer, extra: Partial<Pop3ClientOptions> = {}): Promise<Pop3Client> {
  const client = await Pop3Client.connect({
    host: '127.0.0.1',
    port: server.port,
    security: 'none',
    tlsVerify: true,
    timeoutMs: 2_000,
    ...extra,
  });
  clients.push(client);
  return client;
}

// --- the tests -------------------------------------------------------------------------------------

// Generous per-test bounds: these tests also run on loaded CI machines beside the integration suite.
describe('POP3 client over a fake server', { timeout: 30_000 }, () => {
  it('reads RETR byte-exact when the answer is split into two packets at every offset', async () => {
    // Dot-stuffed lines, 8-bit bytes, a line that is a lone "." in the message, a final CRLF.
    const message = Buffer.concat([
      Buffer.from('Subject: split\r\n\r\n.starts with a dot\r\n.\r\n', 'latin1'),
      Buffer.from([0xc3, 0xa4, 0xff, 0x00, 0x80, 0x0d, 0x0a]),
      Buffer.from('end\r\n', 'latin1'),
    ]);
    const wire = Buffer.concat([
      Buffer.from('+OK message follows\r\n'),
      Buffer.from(message.toString('latin1').replace(/^\./gm, '..'), 'latin1'),
      Buffer.from('.\r\n'),
    ]);
    const server = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      for (let offset = 0; offset <= wire.length; offset++) {
        expect(await conn.next()).toBe('RETR 1');
        conn.write(wire.subarray(0, offset));
        // A pause so the two writes travel as two packets.
        await sleep(2);
        conn.write(wire.subarray(offset));
      }
    });
    const client = await connect(server);
    await client.login('u', { password: 'p' });
    for (let offset = 0; offset <= wire.length; offset++) {
      const { stream, done } = await client.retr(1);
      const bytes = await readAll(stream);
      await done;
      expect(bytes.equals(message), `split at ${offset}`).toBe(true);
    }
    expect(client.usable).toBe(true);
  });

  it('times out a server that goes silent in the greeting, after a command, or in the middle of RETR', async () => {
    const silentGreeting = await fakeServer(async () => {
      // accepts, never speaks
    });
    let started = Date.now();
    const greetErr = await rejection(connect(silentGreeting, { timeoutMs: 300 }));
    expect(greetErr.code).toBe('UPSTREAM_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(3_000);

    const silentMidRetr = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      expect(await conn.next()).toBe('STAT');
      conn.write('+OK 1 5000\r\n');
      expect(await conn.next()).toBe('RETR 1');
      conn.write('+OK\r\nSubject: half\r\n\r\nfirst part of the bo');
      // ...and nothing more, connection left open.
    });
    const client = await connect(silentMidRetr, { timeoutMs: 300 });
    await client.login('u', { password: 'p' });
    await client.stat();
    const { stream, done } = await client.retr(1);
    started = Date.now();
    const streamErr = await rejection(readAll(stream));
    expect(streamErr.code).toBe('UPSTREAM_TIMEOUT');
    expect((await rejection(done)).code).toBe('UPSTREAM_TIMEOUT');
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(3_000);
    expect(client.usable).toBe(false);
    // Later calls fail at once instead of hanging.
    expect((await rejection(client.noop())).code).toBe('UPSTREAM_TIMEOUT');

    const silentAfterCommand = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      await conn.next(); // UIDL, never answered
    });
    const quiet = await connect(silentAfterCommand, { timeoutMs: 300 });
    await quiet.login('u', { password: 'p' });
    started = Date.now();
    expect((await rejection(quiet.uidl())).code).toBe('UPSTREAM_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('fails cleanly when the server closes in the middle of RETR, and sends nothing after', async () => {
    const server = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      expect(await conn.next()).toBe('RETR 1');
      conn.write('+OK\r\nSubject: cut\r\n\r\nsome of the body\r\n..and a stuffed');
      await sleep(20);
      conn.socket.destroy();
    });
    const client = await connect(server);
    await client.login('u', { password: 'p' });
    const { stream, done } = await client.retr(1);
    const err = await rejection(readAll(stream));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect((await rejection(done)).code).toBe('UPSTREAM_ERROR');
    expect(client.usable).toBe(false);
    expect((await rejection(client.quit())).code).toBe('UPSTREAM_ERROR');
    await sleep(20);
    expect(server.commands.filter((c) => /^(DELE|QUIT)/.test(c))).toEqual([]);
  });

  it('maps -ERR [IN-USE] to POOL_EXHAUSTED with Retry-After, and a refused login to UPSTREAM_AUTH_FAILED', async () => {
    const server = await fakeServer(async (conn) => {
      await opening(conn);
      expect(await conn.next()).toMatch(/^USER /);
      conn.write('+OK\r\n');
      expect(await conn.next()).toMatch(/^PASS /);
      conn.write('-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n');
    });
    const client = await connect(server);
    const inUse = await rejection(client.login('u', { password: 'p' }));
    expect(inUse.code).toBe('POOL_EXHAUSTED');
    expect(inUse.status).toBe(503);
    expect(inUse.retryAfterSeconds).toBeGreaterThan(0);
    expect(inUse.message).toContain('in use');
    expect(inUse.message).not.toContain('PASS p');

    const refused = await fakeServer(async (conn) => {
      await opening(conn);
      expect(await conn.next()).toMatch(/^USER /);
      conn.write('+OK\r\n');
      expect(await conn.next()).toMatch(/^PASS /);
      conn.write('-ERR [AUTH] Authentication failed.\r\n');
    });
    const other = await connect(refused);
    expect((await rejection(other.login('u', { password: 'p' }))).code).toBe('UPSTREAM_AUTH_FAILED');
  });

  it('refuses to send credentials when security is starttls and the server offers no STLS', async () => {
    const server = await fakeServer(async (conn) => {
      await opening(conn, ['USER', 'SASL PLAIN']);
      await conn.next();
    });
    const err = await rejection(connect(server, { security: 'starttls' }));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect(err.message).toMatch(/STLS/);
    await sleep(20);
    expect(server.commands).toEqual(['CAPA']);
  });

  it('refuses bytes sent after the STLS answer before the TLS handshake (command injection)', async () => {
    const server = await fakeServer(async (conn) => {
      await opening(conn, ['USER', 'STLS']);
      expect(await conn.next()).toBe('STLS');
      conn.write('+OK Begin TLS negotiation\r\n+OK injected\r\n');
    });
    const err = await rejection(connect(server, { security: 'starttls' }));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect(server.commands).toEqual(['CAPA', 'STLS']);
  });

  it('runs one command at a time: concurrent calls queue and their answers never mix', async () => {
    let overlapped = false;
    const server = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      let busy = false;
      conn.socket.on('data', () => {
        if (busy) overlapped = true;
      });
      for (;;) {
        const line = await conn.next();
        busy = true;
        if (line === 'UIDL') {
          conn.write('+OK\r\n1 aaa\r\n');
          await sleep(30);
          conn.write('2 bbb\r\n.\r\n');
        } else if (line === 'LIST') {
          conn.write('+OK\r\n1 100\r\n2 200\r\n.\r\n');
        } else if (line === 'STAT') {
          conn.write('+OK 2 300\r\n');
        } else {
          conn.write('-ERR unknown\r\n');
        }
        // The answer is complete: the next command may come now, not before.
        busy = false;
      }
    });
    const client = await connect(server);
    await client.login('u', { password: 'p' });
    const [uidl, list, stat] = await Promise.all([client.uidl(), client.list(), client.stat()]);
    expect(uidl).toEqual([
      { number: 1, uidl: 'aaa' },
      { number: 2, uidl: 'bbb' },
    ]);
    expect(list).toEqual([
      { number: 1, size: 100 },
      { number: 2, size: 200 },
    ]);
    expect(stat).toEqual({ count: 2, size: 300 });
    expect(overlapped).toBe(false);
  });

  it('pauses the socket for a reader that does not read: the server stalls, the client holds little', async () => {
    const line = `${'x'.repeat(76)}\r\n`;
    const block = Buffer.from(line.repeat(Math.floor((256 * 1024) / line.length)));
    const blocks = 128; // ~32 MiB
    const total = block.length * blocks;
    let written = 0;
    let stalledSince = 0;
    const server = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      expect(await conn.next()).toBe('RETR 1');
      conn.write('+OK\r\n');
      for (let i = 0; i < blocks; i++) {
        if (!conn.socket.write(block)) {
          stalledSince = Date.now();
          await once(conn.socket, 'drain');
          stalledSince = 0;
        }
        written += block.length;
      }
      conn.write('.\r\n');
    });
    const client = await connect(server, { streamHighWaterMark: 256 * 1024 });
    await client.login('u', { password: 'p' });
    const { stream, done } = await client.retr(1);
    stream.pause();
    stream.once('readable', () => undefined); // a reader that is there but does not read
    await sleep(600);
    expect(stalledSince).toBeGreaterThan(0);
    expect(Date.now() - stalledSince).toBeGreaterThan(200);
    // Measured here: ~7.5 MB in flight (socket buffers on both ends of the loopback).
    expect(written).toBeLessThan(total / 2);
    // What the client holds: the stream's buffer (about one high-water mark) and its socket buffer.
    expect(stream.readableLength).toBeLessThanOrEqual(256 * 1024 + 128 * 1024);
    expect(client.bufferedBytes).toBeLessThan(1024 * 1024);
    // No timeout fired while the reader was the one behind.
    expect(client.usable).toBe(true);

    const hash = createHash('sha256');
    let length = 0;
    for await (const chunk of stream) {
      hash.update(chunk as Buffer);
      length += (chunk as Buffer).length;
    }
    await done;
    expect(length).toBe(total);
    const expected = createHash('sha256');
    for (let i = 0; i < blocks; i++) expected.update(block);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
  });

  it('answers the next command while the reader of a finished RETR has not read it yet', async () => {
    const body = `Subject: slow reader\r\n\r\n${'z'.repeat(8 * 1024)}\r\n`;
    const server = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      expect(await conn.next()).toBe('RETR 1');
      // One write: the reader's buffer fills and the terminator arrives in the same packet.
      conn.write(`+OK\r\n${body}.\r\n`);
      expect(await conn.next()).toBe('NOOP');
      conn.write('+OK\r\n');
    });
    const client = await connect(server, { streamHighWaterMark: 1024, timeoutMs: 500 });
    await client.login('u', { password: 'p' });
    const { stream, done } = await client.retr(1);
    await done;
    await client.noop();
    expect((await readAll(stream)).toString('latin1')).toBe(body);
  });

  it('keeps the session usable when a reader abandons a RETR stream (the rest is drained)', async () => {
    const server = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      expect(await conn.next()).toBe('RETR 1');
      conn.write(`+OK\r\n${'y'.repeat(1000)}\r\n`);
      await sleep(30);
      conn.write(`${'z'.repeat(1000)}\r\n.\r\n`);
      expect(await conn.next()).toBe('NOOP');
      conn.write('+OK\r\n');
    });
    const client = await connect(server);
    await client.login('u', { password: 'p' });
    const { stream, done } = await client.retr(1);
    await once(stream, 'readable');
    stream.destroy();
    await done;
    await client.noop();
    expect(client.usable).toBe(true);
  });

  it('logs in with XOAUTH2, sending the token after the empty challenge, and reports a refused token', async () => {
    const token = 'ya29.'.padEnd(300, 'T');
    let sent = '';
    const server = await fakeServer(async (conn) => {
      await opening(conn, ['SASL PLAIN XOAUTH2', 'USER']);
      expect(await conn.next()).toBe('AUTH XOAUTH2');
      conn.write('+ \r\n');
      sent = Buffer.from(await conn.next(), 'base64').toString('utf8');
      conn.write('+OK logged in\r\n');
    });
    const client = await connect(server);
    expect(await client.login('alice@example.com', { accessToken: token })).toBe('XOAUTH2');
    expect(sent).toBe(`user=alice@example.com\x01auth=Bearer ${token}\x01\x01`);

    const refusing = await fakeServer(async (conn) => {
      await opening(conn, ['SASL XOAUTH2']);
      expect(await conn.next()).toBe('AUTH XOAUTH2');
      conn.write('+ \r\n');
      await conn.next();
      conn.write(`+ ${Buffer.from('{"status":"401"}').toString('base64')}\r\n`);
      expect(await conn.next()).toBe('');
      conn.write('-ERR [AUTH] Invalid credentials\r\n');
    });
    const other = await connect(refusing);
    expect((await rejection(other.login('alice@example.com', { accessToken: token }))).code).toBe('UPSTREAM_AUTH_FAILED');
  });

  it('sends a short XOAUTH2 response on the AUTH line, or after the `+` when the server takes only that (Outlook)', async () => {
    const token = 'at_short';
    const response = Buffer.from(`user=alice@example.com\x01auth=Bearer ${token}\x01\x01`).toString('base64');
    const lines: string[] = [];
    const inline = await fakeServer(async (conn) => {
      await opening(conn, ['SASL XOAUTH2']);
      lines.push(await conn.next());
      conn.write('+OK logged in\r\n');
    });
    await (await connect(inline)).login('alice@example.com', { accessToken: token });
    const twoLines = await fakeServer(async (conn) => {
      await opening(conn, ['SASL XOAUTH2']);
      lines.push(await conn.next());
      conn.write('+ \r\n');
      lines.push(await conn.next());
      conn.write('+OK logged in\r\n');
    });
    await (await connect(twoLines)).login('alice@example.com', { accessToken: token, initialResponse: false });
    expect(lines).toEqual([`AUTH XOAUTH2 ${response}`, 'AUTH XOAUTH2', response]);
  });

  it('drops the session when the server sends data nobody asked for', async () => {
    const server = await fakeServer(async (conn) => {
      await opening(conn);
      await userPass(conn);
      await sleep(10);
      conn.write('-ERR Disconnected for inactivity.\r\n');
    });
    const client = await connect(server);
    const closed = new Promise((resolve) => client.onClosed(resolve));
    await client.login('u', { password: 'p' });
    expect(await closed).toBeInstanceOf(GatewayError);
    expect(client.usable).toBe(false);
    expect((await rejection(client.stat())).code).toBe('UPSTREAM_ERROR');
  });
});
