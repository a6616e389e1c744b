/**
 * Row (p)'s baseline: imapflow itself behind the thinnest HTTP server there is (node:http), so that
 * both sides of the row go through the same load generator. SESSIONS kept sessions, each with INBOX
 * selected; a request takes a free one, sends NOOP and the FETCH of the newest 50 with the items the
 * gateway's listing asks for, and answers their UIDs as JSON. What the gateway does beyond this
 * (routing, auth, the pool, summaries, ids, schema, logging, metrics) is what row (p) measures.
 *
 * Env: PORT, HOST, IMAP_PORT, IMAP_USER, IMAP_PASS, SESSIONS.
 */
import http from 'node:http';
import type { ImapFlow } from 'imapflow';
import { SUMMARY_FETCH_QUERY } from '../../src/mail/imap/summary.js';
import { directImapClient } from '../../test/support/imap-client.js';

const dovecot = { host: '127.0.0.1' as const, imapPort: Number(process.env.IMAP_PORT) };
const user = { username: process.env.IMAP_USER ?? '', password: process.env.IMAP_PASS ?? '' };

const sessions = await Promise.all(
  Array.from({ length: Number(process.env.SESSIONS ?? '4') }, async () => {
    const client = directImapClient(dovecot, user, { disableAutoIdle: true });
    await client.connect();
    await client.mailboxOpen('INBOX');
    return client;
  }),
);
const free: ImapFlow[] = [...sessions];
const waiting: Array<(client: ImapFlow) => void> = [];
const take = (): Promise<ImapFlow> => (free.length > 0 ? Promise.resolve(free.pop()!) : new Promise((resolve) => waiting.push(resolve)));
const give = (client: ImapFlow): void => {
  const next = waiting.shift();
  if (next) next(client);
  else free.push(client);
};

async function newestFifty(): Promise<number[]> {
  const client = await take();
  try {
    await client.noop();
    const exists = client.mailbox ? client.mailbox.exists : 0;
    const uids: number[] = [];
    for await (const msg of client.fetch(`${Math.max(1, exists - 49)}:${exists}`, SUMMARY_FETCH_QUERY)) uids.push(msg.uid);
    return uids;
  } finally {
    give(client);
  }
}

const server = http.createServer((req, res) => {
  if (req.url === '/ready') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
  newestFifty().then(
    (uids) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ uids })),
    (err: Error) => res.writeHead(502).end(err.message),
  );
});
process.on('SIGTERM', () => {
  server.close();
  void Promise.allSettled(sessions.map((client) => client.logout())).then(() => process.exit(0));
});
server.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');
