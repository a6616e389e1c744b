/**
 * Row (k)'s baseline, in a process of its own: what holding N mailboxes live costs a bare imapflow
 * client. Each connection logs in, selects INBOX and IDLEs (RFC 2177), and nothing else: no event
 * log, no HTTP, no folder but INBOX. The bench reads this process's RSS and CPU time from /proc.
 *
 * Commands on stdin, one JSON object a line; one JSON answer a line on stdout:
 *   {"hold": [{"username", "password"}, ...]} → {"held": n}   (all connected and IDLEing)
 *   {"release": true}                          → {"released": n}
 *   {"pid": true}                              → {"pid": n}      (whose /proc the bench reads)
 * Env: IMAP_PORT.
 */
import type { ImapFlow } from 'imapflow';
import { createInterface } from 'node:readline';
import { directImapClient } from '../../test/support/imap-client.js';

const LOOPBACK_DOVECOT = { host: '127.0.0.1' as const, imapPort: Number(process.env.IMAP_PORT) };
/** Logins at once: Dovecot's login processes take them in turn anyway. */
const CONCURRENT_LOGINS = 16;

const held: ImapFlow[] = [];

async function hold(users: Array<{ username: string; password: string }>): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < users.length) {
      const user = users[next++]!;
      const client = directImapClient(LOOPBACK_DOVECOT, user, { disableAutoIdle: true });
      await client.connect();
      await client.mailboxOpen('INBOX');
      void client.idle().catch(() => undefined);
      held.push(client);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENT_LOGINS }, worker));
  return held.length;
}

async function release(): Promise<number> {
  const count = held.length;
  await Promise.all(held.splice(0).map((client) => client.logout().catch(() => undefined)));
  return count;
}

const answer = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
answer({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { hold?: Array<{ username: string; password: string }>; release?: boolean; pid?: boolean };
  try {
    if (command.pid) answer({ pid: process.pid });
    else if (command.hold !== undefined) answer({ held: await hold(command.hold) });
    else answer({ released: await release() });
  } catch (error) {
    answer({ error: error instanceof Error ? error.message : String(error) });
  }
}
await release();
