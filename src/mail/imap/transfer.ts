/**
 * Move and copy of one message, answering its UID in the destination.
 *
 * MOVE (RFC 6851) where the server has it; else COPY, then `\Deleted` and UID EXPUNGE of that UID
 * only (UIDPLUS, RFC 4315). Without either, a move would have to EXPUNGE every `\Deleted` message of
 * the mailbox, so it is refused (decision 0006). The new UID comes from COPYUID (RFC 4315 §3); a
 * server without UIDPLUS is searched for the Message-ID in the destination instead.
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { messageNotFound, notSupported } from '../mail-errors.js';
import { selectedMailbox } from './listing.js';
import { selectAfresh } from './mailbox-sync.js';
import type { ExpectedStates } from '../types.js';
import { syncView, withMessageLock } from './message-lock.js';
import { checkExpectedStates, syncForCheck } from './precondition.js';

export interface Transferred {
  uid: number;
  uidValidity: bigint;
}

export async function transferMessage(
  client: ImapFlow,
  uid: number,
  destination: string,
  mode: 'move' | 'copy',
  expected?: ExpectedStates,
): Promise<Transferred> {
  // One write to a message at a time (message-lock.ts): a COPY racing a DELETE would otherwise copy
  // the `\Deleted` flag the DELETE had just set, a MOVE racing it would leave both answering success.
  return withMessageLock(client, uid, () => transferLocked(client, uid, destination, mode, expected));
}

async function transferLocked(
  client: ImapFlow,
  uid: number,
  destination: string,
  mode: 'move' | 'copy',
  expected: ExpectedStates | undefined,
): Promise<Transferred> {
  const source = selectedMailbox(client).path;
  await (expected === undefined ? syncView(client) : syncForCheck(client));
  // The source first: a missing message is MESSAGE_NOT_FOUND whatever the destination (API.md).
  const existing = await client.fetchOne(String(uid), { uid: true, headers: ['message-id'] }, { uid: true });
  if (!existing || existing.uid !== uid) throw messageNotFound();
  if (mode === 'move' && !client.capabilities.has('MOVE') && !client.capabilities.has('UIDPLUS')) {
    throw notSupported('This server has neither MOVE nor UIDPLUS, so one message cannot be moved without expunging others');
  }
  // IMAP has no conditional MOVE or COPY: the state is checked on the view just synced, with this
  // message's lock held, and the MOVE follows as the next command (decision 0010). The destination
  // is part of the request's content, so a missing one is told only once the condition held
  // (RFC 9110 §13.2.1).
  if (expected !== undefined) await checkExpectedStates(client, expected);
  const uidPlus = client.capabilities.has('UIDPLUS');
  // Without UIDPLUS the new message is found by Message-ID afterwards; only UIDs from here on can be it
  // (an earlier copy of the same message may sit in the destination already).
  const firstNewUid = uidPlus ? undefined : await uidNextOf(client, destination);
  const result =
    mode === 'move'
      ? await client.messageMove(String(uid), destination, { uid: true })
      : await client.messageCopy(String(uid), destination, { uid: true });
  if (!result) {
    // Dovecot answers NO [TRYCREATE] for a missing destination (imapflow then resolves false).
    if (!(await mailboxExists(client, destination))) throw new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${destination}`);
    throw new GatewayError('UPSTREAM_ERROR', `The mail server refused to ${mode} the message`);
  }
  const newUid = result.uidMap?.get(uid);
  if (newUid !== undefined && result.uidValidity !== undefined) return { uid: newUid, uidValidity: result.uidValidity };
  if (uidPlus) {
    // A UIDPLUS server names in COPYUID every message it copied or moved (RFC 4315 §3, RFC 6851
    // §4.3). None for ours: the message was expunged by another session after the check above, and
    // the server did nothing (Dovecot: `OK No messages found`). Searching the destination by
    // Message-ID would find nothing (a 5xx) or an older copy (a wrong id).
    throw messageNotFound();
  }
  const messageId = messageIdOf(existing.headers);
  const found = await findByMessageId(client, destination, messageId, firstNewUid);
  await selectAfresh(client, source);
  return found;
}

export async function mailboxExists(client: ImapFlow, path: string): Promise<boolean> {
  try {
    const status = await client.status(path, { uidValidity: true });
    return status !== false;
  } catch {
    return false;
  }
}

/** The destination's UIDNEXT (STATUS, RFC 9051 §6.3.11); a missing mailbox is left to the transfer to report. */
async function uidNextOf(client: ImapFlow, path: string): Promise<number | undefined> {
  try {
    const status = await client.status(path, { uidNext: true });
    return status === false ? undefined : status.uidNext;
  } catch {
    return undefined;
  }
}

/**
 * Without UIDPLUS the server does not say which UID it gave the message: select the destination and
 * take the highest UID carrying the same Message-ID (the one just added), at or above `firstNewUid`
 * when known. Leaves the destination selected.
 */
export async function findByMessageId(
  client: ImapFlow,
  path: string,
  messageId: string | null,
  firstNewUid?: number,
): Promise<Transferred> {
  if (messageId === null) {
    throw new GatewayError('UPSTREAM_ERROR', 'Done, but the server (no UIDPLUS) did not tell the new id and the message has no Message-ID to find it by');
  }
  await selectAfresh(client, path);
  const mailbox = selectedMailbox(client);
  const uids = await client.search({ header: { 'message-id': messageId } }, { uid: true });
  const candidates = Array.isArray(uids) ? uids.filter((u) => firstNewUid === undefined || u >= firstNewUid) : [];
  const newest = candidates.length > 0 ? Math.max(...candidates) : undefined;
  if (newest === undefined) throw new GatewayError('UPSTREAM_ERROR', 'Done, but the new message could not be found in the destination');
  return { uid: newest, uidValidity: mailbox.uidValidity };
}

function messageIdOf(headers: Buffer | undefined): string | null {
  const match = /^message-id:\s*(<[^>\r\n]+>)/im.exec(headers?.toString('utf8') ?? '');
  return match?.[1] ?? null;
}

