/**
 * Creating, renaming, subscribing and deleting mailboxes (RFC 9051 §6.3.4-6.3.10). Paths are UTF-8;
 * imapflow encodes modified UTF-7 on the wire. INBOX cannot be deleted or renamed through the API
 * (RENAME of INBOX has special semantics in RFC 9051 §6.3.6 that surprise more than they help).
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { listMailboxes } from './mailboxes.js';
import { selectAfresh } from './mailbox-sync.js';
import type { MailboxInfo } from '../types.js';

function refuseInbox(path: string, what: string): void {
  if (path.toUpperCase() === 'INBOX') {
    throw new GatewayError('VALIDATION_FAILED', `path/mailbox: INBOX cannot be ${what}`);
  }
}

export async function createMailbox(client: ImapFlow, path: string): Promise<MailboxInfo> {
  const result = await client.mailboxCreate(path).catch(async (err: unknown) => {
    throw await mapAdminError(client, err, { path: onServer(client, path), mustBe: 'free' });
  });
  if (!result.created) throw new GatewayError('MAILBOX_EXISTS', `A mailbox ${path} already exists`);
  // A trailing delimiter only declares that children will follow; the mailbox created is named
  // without it (RFC 9051 §6.3.4), and that is the one to describe.
  const delimiter = client.namespace?.delimiter;
  const created = delimiter && result.path.endsWith(delimiter) ? result.path.slice(0, -delimiter.length) : result.path;
  return describeMailbox(client, created);
}

export async function renameMailbox(client: ImapFlow, path: string, newPath: string): Promise<MailboxInfo> {
  refuseInbox(path, 'renamed');
  // INBOX always exists (RFC 9051 §5.1). Dovecot refuses a RENAME onto it from a real mailbox, but
  // takes one from a hierarchy-only (\Noselect) name and moves its children under INBOX.
  if (newPath.toUpperCase() === 'INBOX') throw new GatewayError('MAILBOX_EXISTS', 'INBOX always exists; nothing can be renamed to it');
  const delimiter = client.namespace?.delimiter;
  if (delimiter && newPath.startsWith(path + delimiter)) {
    // Dovecot answers a plain NO, which would read as a server fault.
    throw new GatewayError('VALIDATION_FAILED', `body/path: ${path} cannot be moved under itself (${newPath})`);
  }
  await leaveIfSelected(client, path);
  const result = await client.mailboxRename(path, newPath).catch(async (err: unknown) => {
    throw await mapAdminError(client, err, { path: onServer(client, path), mustBe: 'present' }, { path: onServer(client, newPath), mustBe: 'free' });
  });
  const mailboxes = await listMailboxes(client, false);
  const renamed = mailboxes.find((m) => m.path === result.newPath);
  if (renamed !== undefined) return renamed;
  // Courier answers OK to a RENAME of a mailbox that does not exist, and renames nothing.
  if (!mailboxes.some((m) => m.path === onServer(client, path))) throw new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${path}`);
  throw new GatewayError('UPSTREAM_ERROR', `The mail server said it renamed ${path}, but lists no ${result.newPath}`);
}

export async function setSubscribed(client: ImapFlow, path: string, subscribed: boolean): Promise<MailboxInfo> {
  const info = await describeMailbox(client, path);
  const ok = subscribed ? await client.mailboxSubscribe(path) : await client.mailboxUnsubscribe(path);
  if (!ok) throw new GatewayError('UPSTREAM_ERROR', `The mail server refused to ${subscribed ? 'subscribe to' : 'unsubscribe from'} ${path}`);
  return { ...info, subscribed };
}

export async function deleteMailbox(client: ImapFlow, path: string): Promise<void> {
  refuseInbox(path, 'deleted');
  await leaveIfSelected(client, path);
  await client.mailboxDelete(path).catch(async (err: unknown) => {
    throw await mapAdminError(client, err, { path: onServer(client, path), mustBe: 'present' });
  });
}

/**
 * The name a command on `path` acts on: imapflow puts the personal namespace's prefix (RFC 2342, e.g.
 * Cyrus's and Courier's `INBOX.`) in front of a name that lacks it.
 */
function onServer(client: ImapFlow, path: string): string {
  if (path.toUpperCase() === 'INBOX') return 'INBOX';
  const prefix = client.namespace?.prefix;
  return prefix && !path.startsWith(prefix) ? prefix + path : path;
}

/** A mailbox about to go away must not stay selected in this session (CLOSE would expunge). */
async function leaveIfSelected(client: ImapFlow, path: string): Promise<void> {
  if (client.mailbox && client.mailbox.path === onServer(client, path)) await selectAfresh(client, 'INBOX');
}

export async function describeMailbox(client: ImapFlow, path: string): Promise<MailboxInfo> {
  const all = await listMailboxes(client, false);
  const info = all.find((m) => m.path === path);
  if (info === undefined) throw new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${path}`);
  return info;
}

/**
 * What a refusal means. RFC 5530 response codes say it (Dovecot sends them); Cyrus and Courier answer a
 * bare NO, so the refusal is explained by LIST: a name that had to be free but exists is MAILBOX_EXISTS,
 * one that had to exist but does not is MAILBOX_NOT_FOUND. `checks` are in the order they are told
 * (for a rename: the source, then the destination). A refusal LIST does not explain stays as it was.
 */
async function mapAdminError(client: ImapFlow, err: unknown, ...checks: Array<{ path: string; mustBe: 'free' | 'present' }>): Promise<unknown> {
  const e = err as { serverResponseCode?: string; responseText?: string; responseStatus?: string };
  const [first] = checks;
  const last = checks[checks.length - 1];
  switch (e.serverResponseCode) {
    case 'ALREADYEXISTS':
      return new GatewayError('MAILBOX_EXISTS', `A mailbox ${last?.path} already exists`, { cause: err });
    case 'NONEXISTENT':
      return new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${first?.path}`, { cause: err });
    case 'CANNOT':
    case 'INUSE':
      return new GatewayError('VALIDATION_FAILED', `The server cannot do that with ${first?.path}: ${e.responseText ?? 'refused'}`, { cause: err });
  }
  if (e.responseStatus !== 'NO') return err;
  // What the server lists itself (not the API's list, which adds hierarchy-only parents), and each name
  // without the trailing delimiter a CREATE may carry (RFC 9051 §6.3.4).
  let paths: Set<string>;
  try {
    paths = new Set((await client.list()).map((m) => m.path));
  } catch {
    return err;
  }
  const delimiter = client.namespace?.delimiter;
  for (const check of checks) {
    const name = delimiter && check.path.endsWith(delimiter) ? check.path.slice(0, -delimiter.length) : check.path;
    if (check.mustBe === 'free' && paths.has(name)) return new GatewayError('MAILBOX_EXISTS', `A mailbox ${name} already exists`, { cause: err });
    if (check.mustBe === 'present' && !paths.has(name)) return new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${name}`, { cause: err });
  }
  return err;
}
