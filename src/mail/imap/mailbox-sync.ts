/**
 * Bringing a session's selected mailbox up to date: SELECT when another mailbox is selected, NOOP
 * (and STATUS when mail arrived) when it is, and the state a listing is checked against.
 *
 * A session remembers when its view was last synchronised, so a listing that follows its own state
 * check on the same session does not send a second NOOP (decision 0008).
 */
import type { ImapFlow, MailboxObject } from 'imapflow';
import { mailboxState, selectedMailbox } from './listing.js';
import { cacheable, statusState } from './listing-cache.js';

/**
 * When each session's view of its selected mailbox was last brought up to date: the moment the
 * NOOP or SELECT that did it was sent (performance.now()).
 */
const syncedAt = new WeakMap<ImapFlow, number>();

/**
 * Sessions whose UIDNEXT may be behind the server's: an EXISTS raised the count (imapflow then updates
 * EXISTS, never UIDNEXT) during any command — the NOOP of `syncSelected`, or an APPEND, FETCH or
 * SEARCH of the gateway's own. Cleared by the STATUS or SELECT that learns UIDNEXT.
 */
const uidNextBehind = new WeakSet<ImapFlow>();
const watchedForArrivals = new WeakSet<ImapFlow>();

function watchArrivals(client: ImapFlow): void {
  if (watchedForArrivals.has(client)) return;
  watchedForArrivals.add(client);
  client.on('exists', (event: { count: number; prevCount: number }) => {
    if (event.count > event.prevCount) uidNextBehind.add(client);
  });
}

/**
 * Selects `path` unless it already is; `sync` also brings the session's view of it up to date,
 * unless a NOOP or SELECT sent at or after `syncedSince` already did (the listing after its own
 * state check, on the session that made it).
 */
export async function selectMailbox(client: ImapFlow, path: string, sync: boolean, syncedSince?: number): Promise<void> {
  if (client.mailbox && client.mailbox.path === path) {
    const fresh = syncedSince !== undefined && (syncedAt.get(client) ?? Number.NEGATIVE_INFINITY) >= syncedSince;
    if (sync && !fresh) await syncSelected(client, path);
    return;
  }
  await selectAfresh(client, path);
}

/**
 * The mailbox's state as the server reports it now, or null when it cannot be told cheaply (no
 * CONDSTORE): a NOOP on a session that has it selected, else a STATUS (which spares a SELECT).
 */
export async function listingState(client: ImapFlow, path: string): Promise<string | null> {
  if (client.mailbox && client.mailbox.path === path) {
    await syncSelected(client, path);
    const mailbox = selectedMailbox(client);
    return cacheable(mailbox) ? mailboxState(mailbox) : null;
  }
  return statusState(client, path);
}

/**
 * Brings a selected mailbox's state up to date. NOOP (RFC 9051 §6.1.2) makes the server look at the
 * mailbox (Dovecot re-reads a Maildir an outside program delivered into) and report EXISTS, EXPUNGE
 * and flag changes; but a new UIDNEXT is only told by SELECT or STATUS (RFC 9051 §7.2.2). So when an
 * EXISTS raised the count since UIDNEXT was last learnt (in this NOOP, or during an earlier command such
 * as the gateway's own APPEND: `uidNextBehind`), a STATUS follows; without new mail UIDNEXT cannot have
 * moved and one round trip is enough. Likewise an expunge by another session raises
 * HIGHESTMODSEQ (RFC 7162 §3.1.1) without any response telling this session the new value (Dovecot
 * 2.3 sends none), so with CONDSTORE a STATUS follows a reported expunge too: otherwise sessions that
 * selected the mailbox before and after it would hold different states of one mailbox, and an
 * `If-Match` checked on one would refuse a state listed on the other (decision 0010). A UIDVALIDITY
 * other than the session's means the mailbox was rebuilt under it: it is selected afresh.
 *
 * Exported for writes under `If-Match`, which sync inside their per-message lock (precondition.ts).
 */
export async function syncSelected(client: ImapFlow, path: string): Promise<void> {
  watchArrivals(client);
  let expunged = false;
  const onExpunge = (): void => {
    expunged = true;
  };
  client.on('expunge', onExpunge);
  const sentAt = performance.now();
  try {
    await client.noop();
  } finally {
    client.off('expunge', onExpunge);
  }
  const arrived = uidNextBehind.has(client);
  const condstore = client.capabilities.has('CONDSTORE') || client.capabilities.has('QRESYNC');
  if (!arrived && !(expunged && condstore)) {
    syncedAt.set(client, sentAt);
    return;
  }
  // Not MESSAGES: imapflow would overwrite EXISTS with it, and that count may run ahead of the
  // session's view (the EXISTS responses it has processed), which sequence numbers are relative to.
  const status = await client.status(path, {
    uidValidity: true,
    uidNext: true,
    ...(condstore ? { highestModseq: true } : {}),
  });
  const mailbox = client.mailbox;
  if (!status || !mailbox || mailbox.path !== path) return;
  uidNextBehind.delete(client);
  if (status.uidValidity !== undefined && status.uidValidity !== mailbox.uidValidity) await selectAfresh(client, path);
  else syncedAt.set(client, sentAt);
}

/**
 * SELECT, with a missing or unselectable mailbox reported as such, and UIDNEXT learnt where SELECT does
 * not tell it. Every SELECT of the gateway's sessions goes through here, so that every session's state
 * of one mailbox is the same.
 */
export async function selectAfresh(client: ImapFlow, path: string): Promise<void> {
  watchArrivals(client);
  const sentAt = performance.now();
  let mailbox: MailboxObject;
  try {
    mailbox = await client.mailboxOpen(path);
  } catch (err) {
    // Dovecot answers SELECT of a hierarchy-only (\Noselect) or missing name with a plain NO and no
    // response code: there is no mailbox to open, so that is MAILBOX_NOT_FOUND, not an upstream fault.
    const e = err as { responseStatus?: string; serverResponseCode?: string; mailboxMissing?: boolean };
    if (e.responseStatus === 'NO' && (e.serverResponseCode === undefined || e.serverResponseCode === 'NONEXISTENT')) {
      e.mailboxMissing = true;
    }
    throw err;
  }
  uidNextBehind.delete(client);
  // RFC 3501 §6.3.1 requires the UIDNEXT response code in SELECT's answer; Courier sends none. A state
  // built without it would differ from one a later STATUS filled in, so each session asks at once.
  if (mailbox.uidNext === undefined) await client.status(path, { uidNext: true });
  syncedAt.set(client, sentAt);
}
