/**
 * `If-Match` on an IMAP write (decision 0010): is one of the states the client sent the mailbox's
 * current listing state? Runs under the per-message write lock (message-lock.ts), after `syncForCheck`
 * and after the message was found: a missing message is 404 whatever the condition says, as a response
 * other than 2xx or 412 ignores preconditions (RFC 9110 §13.2.1).
 *
 * - With CONDSTORE (RFC 7162) the state is UIDVALIDITY, UIDNEXT, EXISTS and HIGHESTMODSEQ: any flag
 *   change, arrival or expunge moves one of them, so "current" is string equality with the state the
 *   session reports after syncing. The matched HIGHESTMODSEQ is handed back so that the write's STORE
 *   can carry `UNCHANGEDSINCE` and refuse a change to the message made after this check.
 * - Without CONDSTORE the state is a page's (page-state.ts): the mailbox part must be equal and the
 *   page's UIDs and flags, fetched again, must digest to the same value. The check and the write
 *   are then two commands; the lock keeps this gateway's own writers out between them.
 */
import type { ImapFlow, MailboxObject } from 'imapflow';
import type { GatewayError } from '../../errors.js';
import { decodeImapState, type ImapState } from '../cursor.js';
import { messageNotFound, onlyWeakTags, preconditionFailed } from '../mail-errors.js';
import type { ExpectedStates } from '../types.js';
import { mailboxState, selectedMailbox } from './listing.js';
import { syncSelected } from './mailbox-sync.js';
import { decodePageState, pageDigest, type PageFlags } from './page-state.js';
import { visibleFlags } from './summary.js';

export interface Granted {
  /** The HIGHESTMODSEQ the matched state names, for `UNCHANGEDSINCE` (CONDSTORE); else null. */
  unchangedSince: bigint | null;
}

/**
 * Brings the session's view up to date before the check (NOOP, and STATUS when it reported mail
 * arriving or leaving: SERVERS.md, a selected mailbox shows another client's change only after a
 * NOOP). A mailbox rebuilt meanwhile (new UIDVALIDITY) no longer holds the message the id named.
 */
export async function syncForCheck(client: ImapFlow): Promise<void> {
  const before = selectedMailbox(client);
  await syncSelected(client, before.path);
  if (selectedMailbox(client).uidValidity !== before.uidValidity) throw messageNotFound();
}

/** Resolves when one of `expected.states` is current; else PRECONDITION_FAILED saying what changed. */
export async function checkExpectedStates(client: ImapFlow, expected: ExpectedStates): Promise<Granted> {
  const mailbox = selectedMailbox(client);
  const current = mailboxState(mailbox);
  if (mailbox.highestModseq !== undefined) {
    if (expected.states.includes(current)) {
      return { unchangedSince: mailbox.noModseq === true ? null : BigInt(mailbox.highestModseq) };
    }
    throw changedSince(expected, mailbox);
  }
  let pageChanged = false;
  for (const state of expected.states) {
    const page = decodePageState(state);
    if (page === null || page.mailboxState !== current) continue;
    if ((await pageDigestNow(client, page.uids)) === page.digest) return { unchangedSince: null };
    pageChanged = true;
  }
  throw changedSince(expected, mailbox, pageChanged ? 'flags of messages on that listing page changed' : undefined);
}

/** The refusal of a conditional STORE (`OK [MODIFIED]`): the message changed after the check. */
export function messageChangedMeanwhile(): GatewayError {
  return preconditionFailed('This message was changed by another client just now');
}

/** The page's UIDs and flags as the server has them now, digested as the listing did. */
async function pageDigestNow(client: ImapFlow, uids: string | null): Promise<string> {
  const messages: PageFlags[] = [];
  if (uids !== null) {
    for await (const msg of client.fetch(uids, { uid: true, flags: true }, { uid: true })) {
      messages.push({ uid: msg.uid, flags: visibleFlags(msg.flags) });
    }
  }
  return pageDigest(messages.sort((a, b) => b.uid - a.uid));
}

/** 412 with what changed, as far as the first strong state tells it cheaply. */
function changedSince(expected: ExpectedStates, mailbox: MailboxObject, pageChange?: string): GatewayError {
  const [first] = expected.states;
  if (first === undefined) return onlyWeakTags();
  if (pageChange !== undefined) return preconditionFailed(changed(pageChange));
  const held = heldState(first);
  if (held === null) return preconditionFailed('The If-Match state is not a listing state of this mailbox');
  if (held.uidValidity !== String(mailbox.uidValidity)) {
    return preconditionFailed("The If-Match state is another mailbox's, or from before this mailbox was rebuilt (UIDVALIDITY changed)");
  }
  const arrived = mailbox.uidNext - held.uidNext;
  const removed = held.exists + Math.max(0, arrived) - mailbox.exists;
  const what: string[] = [];
  if (arrived > 0) what.push(`${arrived} message${arrived === 1 ? '' : 's'} arrived`);
  if (removed > 0) what.push(`${removed} message${removed === 1 ? ' was' : 's were'} removed`);
  if (what.length === 0) what.push(mailbox.highestModseq !== undefined ? 'flags changed' : 'the listing page changed');
  return preconditionFailed(changed(what.join(' and ')));
}

/** The mailbox part of a state the gateway issued, or null for anything else. */
function heldState(state: string): ImapState | null {
  try {
    return decodeImapState(decodePageState(state)?.mailboxState ?? state);
  } catch {
    return null;
  }
}

function changed(what: string): string {
  return `The mailbox changed since this state: ${what}`;
}
