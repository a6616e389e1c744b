/**
 * Row (e): what a naive gateway does — every request connects, logs in, SELECTs INBOX, FETCHes the
 * newest 50 (the gateway's own fetch items and mapping), logs out. No pool, no cache, no auth, no
 * logging: only the per-request session is left to compare with.
 *
 * Env: PORT, HOST, IMAP_PORT, IMAP_USER, IMAP_PASS.
 */
import Fastify from 'fastify';
import { directImapClient } from '../../test/support/imap-client.js';
import { SUMMARY_FETCH_QUERY, toSummary } from '../../src/mail/imap/summary.js';

const LOOPBACK_DOVECOT = { host: '127.0.0.1' as const, imapPort: Number(process.env.IMAP_PORT) };

async function newestFifty(): Promise<unknown> {
  const client = directImapClient(LOOPBACK_DOVECOT, { username: process.env.IMAP_USER ?? '', password: process.env.IMAP_PASS ?? '' }, { disableAutoIdle: true });
  await client.connect();
  try {
    const mailbox = await client.mailboxOpen('INBOX');
    const messages = [];
    for await (const msg of client.fetch(`${Math.max(1, mailbox.exists - 49)}:*`, SUMMARY_FETCH_QUERY)) {
      messages.push(toSummary(msg, mailbox.uidValidity));
    }
    messages.sort((a, b) => (b.uid ?? 0) - (a.uid ?? 0));
    return { messages, total: mailbox.exists };
  } finally {
    await client.logout();
  }
}

const app = Fastify({ logger: false });
app.get('/ready', async () => ({ status: 'ok' }));
app.get('/v1/accounts/:account/mailboxes/:mailbox/messages', async () => newestFifty());
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' });
