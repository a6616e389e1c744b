/**
 * An IMAP client of the test's own, straight to the test Dovecot: "another mail client" that
 * changes or reads a mailbox behind the gateway's back. Not connected yet; errors after a
 * disconnect are ignored (the test asserts on what it awaits).
 */
import { ImapFlow } from 'imapflow';
import type { DovecotCoordinates, DovecotUser } from './dovecot.js';

export function directImapClient(dovecot: Pick<DovecotCoordinates, 'host' | 'imapPort'>, user: Pick<DovecotUser, 'username' | 'password'>): ImapFlow {
  const client = new ImapFlow({
    host: dovecot.host,
    port: dovecot.imapPort,
    secure: false,
    doSTARTTLS: false,
    auth: { user: user.username, pass: user.password },
    logger: false,
  });
  client.on('error', () => undefined);
  return client;
}
