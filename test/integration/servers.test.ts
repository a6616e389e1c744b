// Proves the test harness: the run's Dovecot and Redis are up, reachable the ways the gateway will
// use them, and the helpers (createUser, seedMaildir, doveadm) act on the same mail the servers serve.
import net from 'node:net';
import { ImapFlow } from 'imapflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { redisCommand } from '../support/redis.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot, redisUrl } = testServers();

// CRLF line endings, so the size on disk is the RFC822.SIZE that IMAP and POP3 report.
const messages = [
  'From: a@example.test\r\nTo: b@example.test\r\nSubject: harness one\r\nMessage-ID: <one@example.test>\r\n\r\nHello.\r\n',
  'From: a@example.test\r\nTo: b@example.test\r\nSubject: harness two\r\nMessage-ID: <two@example.test>\r\n\r\nA longer body, so the sizes differ.\r\n',
  'From: a@example.test\r\nTo: b@example.test\r\nSubject: harness three\r\nMessage-ID: <three@example.test>\r\n\r\n3\r\n',
];
const sizes = messages.map((message) => Buffer.byteLength(message));

let user: DovecotUser;

beforeAll(async () => {
  // Make the auth process load the passwd-file first, so the login below shows that a user appended
  // afterwards is picked up without a reload.
  await dovecot.doveadm(['user', 'alice']);
  user = await dovecot.createUser('smoke');
  await dovecot.seedMaildir(user.username, messages);
});

function imapClient(mode: 'plain' | 'starttls' | 'tls'): ImapFlow {
  return new ImapFlow({
    host: dovecot.host,
    port: mode === 'tls' ? dovecot.imapsPort : dovecot.imapPort,
    secure: mode === 'tls',
    doSTARTTLS: mode === 'starttls' ? true : mode === 'plain' ? false : undefined,
    tls: { ca: dovecot.caPem, servername: 'localhost' },
    auth: { user: user.username, pass: user.password },
    logger: false,
  });
}

describe('Dovecot IMAP', () => {
  it.each(['plain', 'starttls', 'tls'] as const)('logs in over %s', async (mode) => {
    const client = imapClient(mode);
    await client.connect();
    try {
      expect(client.authenticated).toBeTruthy();
      expect(client.secureConnection).toBe(mode !== 'plain');
    } finally {
      await client.logout();
    }
  });

  it('serves the seeded messages in order with their byte sizes', async () => {
    const client = imapClient('tls');
    await client.connect();
    try {
      await client.mailboxOpen('INBOX', { readOnly: true });
      const fetched: Array<{ uid: number; size: number | undefined; subject: string | undefined }> = [];
      for await (const message of client.fetch('1:*', { uid: true, size: true, envelope: true })) {
        fetched.push({ uid: message.uid, size: message.size, subject: message.envelope?.subject });
      }
      expect(fetched).toEqual([
        { uid: 1, size: sizes[0], subject: 'harness one' },
        { uid: 2, size: sizes[1], subject: 'harness two' },
        { uid: 3, size: sizes[2], subject: 'harness three' },
      ]);
    } finally {
      await client.logout();
    }
  });

  it('is seen from outside by doveadm', async () => {
    const status = await dovecot.doveadm(['mailbox', 'status', '-u', user.username, 'messages', 'INBOX']);
    expect(status.trim()).toBe(`INBOX messages=${messages.length}`);
  });
});

/** A raw POP3 exchange: reads the greeting, then sends each command and collects one-line answers. */
async function pop3Exchange(port: number, commands: string[]): Promise<string[]> {
  const socket = net.connect({ host: dovecot.host, port });
  socket.setTimeout(5_000, () => socket.destroy(new Error('POP3 timeout')));
  const lines: string[] = [];
  let buffer = '';
  let waiting: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let end: number;
    while ((end = buffer.indexOf('\r\n')) !== -1) {
      lines.push(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
    waiting?.();
  });
  const closed = new Promise<never>((_, reject) => {
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`POP3 connection closed after ${JSON.stringify(lines)}`)));
  });
  closed.catch(() => undefined);
  const nextLine = async (index: number): Promise<string> => {
    while (lines.length <= index) await Promise.race([new Promise<void>((resolve) => (waiting = resolve)), closed]);
    return lines[index]!;
  };
  try {
    const answers = [await nextLine(0)];
    for (const command of commands) {
      socket.write(`${command}\r\n`);
      answers.push(await nextLine(answers.length));
    }
    return answers;
  } finally {
    socket.destroy();
  }
}

describe('Dovecot POP3', () => {
  it('greets, logs in with USER/PASS and reports STAT of the seeded maildrop', async () => {
    const [greeting, userAnswer, passAnswer, stat, quit] = await pop3Exchange(dovecot.pop3Port, [
      `USER ${user.username}`,
      `PASS ${user.password}`,
      'STAT',
      'QUIT',
    ]);
    expect(greeting).toMatch(/^\+OK .*ready/);
    expect(userAnswer).toMatch(/^\+OK/);
    expect(passAnswer).toMatch(/^\+OK/);
    expect(stat).toBe(`+OK ${messages.length} ${sizes.reduce((sum, size) => sum + size, 0)}`);
    expect(quit).toMatch(/^\+OK/);
  });
});

describe('Redis', () => {
  it('answers PING', async () => {
    expect(await redisCommand(Number(new URL(redisUrl).port), ['PING'])).toBe('PONG');
  });
});
