/**
 * An IMAP client of the test's own, straight to the test Dovecot: "another mail client" that
 * changes or reads a mailbox behind the gateway's back. Not connected yet; errors after a
 * disconnect are ignored (the test asserts on what it awaits).
 */
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type { DovecotCoordinates, DovecotUser } from './dovecot.js';

export function directImapClient(
  dovecot: Pick<DovecotCoordinates, 'host' | 'imapPort'>,
  user: Pick<DovecotUser, 'username' | 'password'>,
  options: Partial<ImapFlowOptions> = {},
): ImapFlow {
  const client = new ImapFlow({
    host: dovecot.host,
    port: dovecot.imapPort,
    secure: false,
    doSTARTTLS: false,
    auth: { user: user.username, pass: user.password },
    logger: false,
    ...options,
  });
  client.on('error', () => undefined);
  return client;
}

/** Live IMAP connections of `username` as Dovecot counts them (`doveadm who`). */
export async function imapConnectionsOf(dovecot: { doveadm(args: string[]): Promise<string> }, username: string): Promise<number> {
  const out = await dovecot.doveadm(['-f', 'json', 'who', '-1', username]);
  const rows = out.trim() === '' ? [] : (JSON.parse(out) as Array<{ username: string; service: string }>);
  return rows.filter((r) => r.username === username && r.service === 'imap').length;
}
