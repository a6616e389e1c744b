/**
 * Where the copy of a sent message goes (API.md, Sending): the mailbox with the `\Sent` special use
 * (RFC 6154), else one named like a Sent folder, else a new `Sent` (what mail clients do on a
 * server without special-use attributes).
 */
import type { MailService } from '../mail/mail-service.js';
import type { MailboxInfo } from '../mail/types.js';

const SENT_NAMES = /^(sent|sent items|sent messages|sent mail)$/i;

export function sentMailboxOf(mailboxes: MailboxInfo[]): string | null {
  const byRole = mailboxes.find((m) => m.specialUse === '\\Sent');
  if (byRole) return byRole.path;
  const byName = mailboxes.find((m) => SENT_NAMES.test(m.name));
  return byName?.path ?? null;
}

/** Appends `raw` to the account's Sent mailbox with `\Seen`, creating `Sent` when there is none. */
export async function saveToSentMailbox(mail: MailService, accountId: string, raw: Buffer): Promise<void> {
  let path = sentMailboxOf(await mail.listMailboxes(accountId, false));
  if (path === null) path = (await mail.createMailbox(accountId, 'Sent').catch(async (err: unknown) => {
    // Created meanwhile by another client (or another attempt): use it.
    const again = sentMailboxOf(await mail.listMailboxes(accountId, false));
    if (again === null) throw err;
    return { path: again };
  })).path;
  await mail.appendMessage(accountId, path, raw, ['\\Seen']);
}
