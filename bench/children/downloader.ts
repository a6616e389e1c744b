/**
 * Row (g)'s download client, in a process of its own: the bench process, after minutes of
 * autocannon, reads a 25 MB body at a fraction of the speed a fresh process does (curl next to it
 * read the same gateway 2-3x faster), which would be charged to the gateway. Both sides of the
 * comparison are read here: the gateway over HTTP, and imapflow's download() on one kept session.
 *
 * Commands on stdin, one JSON object a line; one JSON answer a line on stdout:
 *   {"http": "<url>"}              → {"bytes": n, "seconds": s, "status": 200}
 *   {"imap": <chunk size in bytes>} → {"bytes": n, "seconds": s}
 * Env: IMAP_PORT, IMAP_USER, IMAP_PASS, UID (the message imapflow downloads from INBOX).
 */
import { createInterface } from 'node:readline';
import { directImapClient } from '../../test/support/imap-client.js';
import { download } from '../http.js';

const LOOPBACK_DOVECOT = { host: '127.0.0.1' as const, imapPort: Number(process.env.IMAP_PORT) };

const client = directImapClient(LOOPBACK_DOVECOT, { username: process.env.IMAP_USER ?? '', password: process.env.IMAP_PASS ?? '' }, { disableAutoIdle: true });
await client.connect();
await client.mailboxOpen('INBOX');

async function viaImap(chunkSize: number): Promise<{ bytes: number; seconds: number }> {
  const start = performance.now();
  const { content } = await client.download(process.env.UID ?? '', undefined, { uid: true, chunkSize });
  let bytes = 0;
  for await (const chunk of content as AsyncIterable<Buffer>) bytes += chunk.length;
  return { bytes, seconds: (performance.now() - start) / 1000 };
}

const answer = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
answer({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { http?: string; imap?: number };
  try {
    answer(command.http !== undefined ? await download(command.http) : await viaImap(command.imap ?? 1024 * 1024));
  } catch (error) {
    answer({ error: error instanceof Error ? error.message : String(error) });
  }
}
await client.logout();
