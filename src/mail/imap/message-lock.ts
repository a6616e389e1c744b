/**
 * Serialises writes to one message within this process.
 *
 * IMAP has no conditional MOVE or EXPUNGE, and a write here is a check followed by one or two
 * commands. On two pooled sessions, a DELETE (`STORE +FLAGS \Deleted`, then `UID EXPUNGE`) and a
 * MOVE of the same message interleave so that both answer success: the MOVE carries the fresh
 * `\Deleted` into the destination and the EXPUNGE then finds nothing to remove (measured against
 * Dovecot 2.3: 14 of 40 concurrent MOVE + DELETE pairs). Holding a lock per message across the
 * check and the write makes the second writer find the message gone, a clean MESSAGE_NOT_FOUND.
 *
 * The lock alone is not enough: a session that has not been told of an expunge yet still answers a
 * UID FETCH of the expunged message from Dovecot's cache (and only then sends the EXPUNGE), so a
 * writer that got the lock after another one first syncs its view (`syncView`).
 *
 * The key is the upstream message (server address, port, user, mailbox, UIDVALIDITY, UID), not the
 * gateway account, so two accounts naming the same mailbox share it. Gateway replicas do not: a
 * MOVE and a DELETE of one message sent to two replicas at the same instant can still both succeed.
 */
import type { ImapFlow } from 'imapflow';
import { selectedMailbox } from './listing.js';

const tails = new Map<string, Promise<void>>();

export async function withMessageLock<T>(client: ImapFlow, uid: number, work: () => Promise<T>): Promise<T> {
  const mailbox = selectedMailbox(client);
  const user = client.options.auth?.user ?? '';
  const key = [client.host, client.port, user, mailbox.path, String(mailbox.uidValidity), uid].join('\u0000');
  const previous = tails.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = previous.then(() => mine);
  tails.set(key, tail);
  // Links of the chain only ever resolve, so a failed writer never blocks the next one.
  await previous;
  try {
    return await work();
  } finally {
    release();
    if (tails.get(key) === tail) tails.delete(key);
  }
}

/**
 * NOOP (RFC 9051 §6.1.2): the server reports what other sessions changed (EXPUNGE, flag updates), so
 * the existence check that follows sees the mailbox as it is now, not as this session last saw it.
 */
export async function syncView(client: ImapFlow): Promise<void> {
  await client.noop();
}
