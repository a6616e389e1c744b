/**
 * The mail side of the bench: a throwaway Dovecot and Redis (the test suite's own starters), two
 * mailboxes written straight into Maildir, and direct imapflow sessions for the baselines.
 *
 * - "small": 2,000 messages, the oldest of them one large (~25 MB) message for rows (g) and (h);
 * - "large": 100,000 messages (fewer in quick mode);
 * - "bench-send-from" and "bench-send-to": row (n)'s sender and recipient, with a Postfix of their own.
 * Every tenth message carries a small attachment, so BODYSTRUCTURE is not always trivial.
 */
import { randomBytes } from 'node:crypto';
import type { ImapFlow } from 'imapflow';
import { directImapClient } from '../test/support/imap-client.js';
import { startDovecot, type DovecotServer, type DovecotUser } from '../test/support/dovecot.js';
import { canRunMta, startMta, type TestMta } from '../test/support/mta.js';
import { messageWithAttachment, textMessage } from '../test/support/messages.js';
import { startRedis, type RedisServer } from '../test/support/redis.js';
import { SUMMARY_FETCH_QUERY } from '../src/mail/imap/summary.js';
import type { BenchOptions } from './options.js';

export interface MailServers {
  dovecot: DovecotServer;
  redis: RedisServer;
  small: DovecotUser;
  large: DovecotUser;
  /** The large message in the small mailbox: where it is and its size as IMAP reports it. */
  bigMessage: BigMessage;
  /**
   * Row (n)'s MTA (a private Postfix delivering into this Dovecot, test/support/mta.ts) and its two
   * Dovecot users: present when row (n) was asked for and the bench runs as root.
   */
  mta?: { server: TestMta; sender: DovecotUser; recipient: DovecotUser };
  /** What setting up took, for the run's log. */
  timings: Record<string, number>;
  stop(): Promise<void>;
}

export interface BigMessage {
  uidValidity: bigint;
  uid: number;
  bytes: number;
}

const SEED_BATCH = 5_000;

/** Postfix refuses messages over 10,240,000 bytes by default; row (n)'s 10 MB attachment is 13.7 MB in base64. */
const MTA_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Row (k) holds 1,000 accounts live twice over (the bare client's IDLE connections, then the
 * gateway's watchers and their pool sessions). Dovecot runs one `imap` process per session, capped at
 * 1,024 by default (`default_process_limit`, 100, caps the login processes), and its anvil and
 * auth services count every process as a client (`default_client_limit`, 1,000).
 */
const MANY_SESSIONS_CONFIG = `
default_process_limit = 5000
default_client_limit = 20000
service imap {
  process_limit = 5000
}
`;
const NAMES = ['Alice Adams', 'Bob Brown', 'Carol Chen', 'Dan Dubois', 'Eve Evans', 'Frank Fischer'];

function smallMessage(index: number): Buffer {
  const sender = NAMES[index % NAMES.length]!;
  const address = `${sender.split(' ')[0]!.toLowerCase()}@example.com`;
  const date = new Date(Date.UTC(2024, 0, 1) + index * 60_000);
  if (index % 10 === 9) {
    return messageWithAttachment({
      subject: `Report ${index} with an attachment`,
      filename: `report-${index}.pdf`,
      content: randomBytes(4_096),
      contentType: 'application/pdf',
    });
  }
  const paragraph = `Line ${index}: the quick brown fox jumps over the lazy dog. `.repeat(8 + (index % 24));
  return textMessage({ subject: `Message ${index} from ${sender}`, from: `${sender} <${address}>`, date, body: paragraph });
}

/** A message of about `bytes` bytes: one base64 attachment (4/3 expansion plus CRLF every 76 chars). */
function bigMessage(bytes: number): Buffer {
  const contentBytes = Math.floor((bytes - 1_024) / ((4 / 3) * (78 / 76)));
  return messageWithAttachment({ subject: 'A large message', filename: 'large.bin', content: randomBytes(contentBytes) });
}

async function seed(dovecot: DovecotServer, user: string, count: number, first?: Buffer): Promise<void> {
  if (first !== undefined) await dovecot.seedMaildir(user, [first]);
  for (let start = first === undefined ? 0 : 1; start < count; start += SEED_BATCH) {
    const batch: Buffer[] = [];
    for (let i = start; i < Math.min(count, start + SEED_BATCH); i++) batch.push(smallMessage(i));
    await dovecot.seedMaildir(user, batch);
  }
}

/** A direct imapflow session (clear text on loopback, as the gateway's accounts use). */
export async function openImap(servers: Pick<MailServers, 'dovecot'>, user: DovecotUser): Promise<ImapFlow> {
  const client = directImapClient(servers.dovecot, user, { disableAutoIdle: true });
  await client.connect();
  return client;
}

const timed = async <T>(timings: Record<string, number>, name: string, work: () => Promise<T>): Promise<T> => {
  const start = performance.now();
  const value = await work();
  timings[name] = Math.round(performance.now() - start);
  return value;
};

export async function startMailServers(options: BenchOptions): Promise<MailServers> {
  const small = { username: 'bench-small', password: randomBytes(9).toString('base64url') };
  const large = { username: 'bench-large', password: randomBytes(9).toString('base64url') };
  const sender = { username: 'bench-send-from', password: randomBytes(9).toString('base64url') };
  const recipient = { username: 'bench-send-to', password: randomBytes(9).toString('base64url') };
  const timings: Record<string, number> = {};
  const [dovecot, redis] = await timed(timings, 'startServersMs', () =>
    // Row (e) opens a connection per request, several at once: well above Dovecot's default of 10.
    // `mta`: LMTP and an auth socket for row (n)'s Postfix.
    Promise.all([
      startDovecot({ users: [small, large, sender, recipient], maxUserIpConnections: 500, extraConfig: MANY_SESSIONS_CONFIG, mta: true }),
      startRedis(),
    ]),
  );
  // Row (n)'s Postfix, when asked for and allowed: `postfix start` takes about 2 s, mostly waiting,
  // so it starts while the mailboxes are seeded.
  const mtaStart = options.rows.has('n') && canRunMta
    ? timed(timings, 'startMtaMs', () => startMta({ dovecot, users: [sender, recipient], messageSizeLimitBytes: MTA_SIZE_LIMIT_BYTES }))
    : Promise.resolve(undefined);
  mtaStart.catch(() => undefined); // awaited below; not unhandled while seeding runs
  const stop = async (): Promise<void> => {
    await (await mtaStart.catch(() => undefined))?.stop();
    await Promise.allSettled([dovecot.stop(), redis.stop()]);
  };
  try {
    await timed(timings, 'seedSmallMs', () => seed(dovecot, small.username, options.smallMailboxMessages, bigMessage(options.bigMessageBytes)));
    await timed(timings, 'seedLargeMs', () => seed(dovecot, large.username, options.largeMailboxMessages));
    // Dovecot indexes a Maildir at its first SELECT; that belongs to seeding, not to any row.
    const servers = { dovecot };
    await timed(timings, 'indexLargeMs', () => selectOnce(servers, large));
    const big = await timed(timings, 'indexSmallMs', () => selectOnce(servers, small));
    const mta = await mtaStart;
    return { dovecot, redis, small, large, bigMessage: big, ...(mta ? { mta: { server: mta, sender, recipient } } : {}), timings, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** SELECTs INBOX and FETCHes the newest 50 once (index and cache built); answers where message 1 is. */
async function selectOnce(servers: Pick<MailServers, 'dovecot'>, user: DovecotUser): Promise<BigMessage> {
  const client = await openImap(servers, user);
  try {
    const mailbox = await client.mailboxOpen('INBOX');
    const from = Math.max(1, mailbox.exists - 49);
    for await (const _msg of client.fetch(`${from}:*`, SUMMARY_FETCH_QUERY)) {
      // drained
    }
    const first = await client.fetchOne('1', { uid: true, size: true });
    if (!first || first.size === undefined) throw new Error(`${user.username}: message 1 not found after seeding`);
    return { uidValidity: mailbox.uidValidity, uid: first.uid, bytes: first.size };
  } finally {
    await client.logout();
  }
}
