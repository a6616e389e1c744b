/**
 * The interop suite's servers (test/interop/): Dovecot, Cyrus and Courier, each run by the `interop`
 * project's globalSetup (interop-setup.ts) and handed to the workers as plain coordinates. A test file
 * runs its cases once per server with `describe.each(mailServers())`, and touches each server only
 * through what every server offers: its own users (`createMailUser`) and IMAP (`seedMessages`, another
 * client's changes through `directImapClient`).
 *
 * `traits` are what each server is known to offer (SERVERS.md), for the tests that check the gateway
 * tells the truth about it.
 */
import { inject } from 'vitest';
import type { CourierCoordinates } from './courier.js';
import { createCourierUser } from './courier.js';
import type { CyrusCoordinates } from './cyrus.js';
import { createCyrusUser } from './cyrus.js';
import { createUser, type DovecotCoordinates, type DovecotUser } from './dovecot.js';
import { directImapClient } from './imap-client.js';

export type MailServerKind = 'dovecot' | 'cyrus' | 'courier';

export type MailServer = ({ kind: 'dovecot' } & DovecotCoordinates) | CyrusCoordinates | CourierCoordinates;

export interface ServerTraits {
  condstore: boolean;
  qresync: boolean;
  /** MOVE (RFC 6851); without it the gateway moves with COPY, STORE \Deleted and UID EXPUNGE (UIDPLUS). */
  move: boolean;
  /** SPECIAL-USE (RFC 6154) attributes on LIST. */
  specialUse: boolean;
  /** WITHIN (RFC 5032: YOUNGER / OLDER, in seconds from now). */
  within: boolean;
  /** Where a user's folders live: "" for top level, "INBOX." below INBOX (Cyrus with Debian's namespace). */
  personalPrefix: string;
  delimiter: string;
}

export const traits: Record<MailServerKind, ServerTraits> = {
  dovecot: { condstore: true, qresync: true, move: true, specialUse: true, within: true, personalPrefix: '', delimiter: '.' },
  cyrus: { condstore: true, qresync: true, move: true, specialUse: true, within: true, personalPrefix: 'INBOX.', delimiter: '.' },
  courier: { condstore: false, qresync: false, move: false, specialUse: false, within: false, personalPrefix: 'INBOX.', delimiter: '.' },
};

declare module 'vitest' {
  export interface ProvidedContext {
    mailServers: MailServer[];
  }
}

/** The run's servers; only inside the `interop` project (whose globalSetup provides them). */
export function mailServers(): MailServer[] {
  const servers = inject('mailServers');
  if (!servers) throw new Error('mailServers(): no servers provided; run this file in the vitest "interop" project');
  return servers;
}

/** A user of its own on `server`, with an empty INBOX. */
export function createMailUser(server: MailServer, prefix = 'interop'): Promise<DovecotUser> {
  switch (server.kind) {
    case 'dovecot':
      return createUser(server, prefix);
    case 'cyrus':
      return createCyrusUser(server, prefix);
    case 'courier':
      return createCourierUser(server, prefix);
  }
}

/** `path` as it is named on `server`: a top-level folder sits below the personal prefix where there is one. */
export function folderPath(server: MailServer, path: string): string {
  const { personalPrefix, delimiter } = traits[server.kind];
  return personalPrefix + path.split('/').join(delimiter);
}

/**
 * Appends messages as another client would, in order; string messages get CRLF line ends (Cyrus
 * refuses bare LF).
 */
export async function seedMessages(
  server: MailServer,
  user: DovecotUser,
  messages: Array<string | Buffer>,
  options: { mailbox?: string; flags?: string[]; internalDate?: Date } = {},
): Promise<void> {
  const client = directImapClient(server, user);
  await client.connect();
  try {
    for (const message of messages) {
      const text = typeof message === 'string' ? Buffer.from(message.replace(/\r?\n/g, '\r\n')) : message;
      await client.append(options.mailbox ?? 'INBOX', text, options.flags ?? [], options.internalDate);
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}
