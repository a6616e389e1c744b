/**
 * What changed in a mailbox since a state the gateway handed out (API.md, Changes), from CONDSTORE
 * and QRESYNC (RFC 7162):
 * - created: UIDs at or above the old UIDNEXT (`UID SEARCH UID n:*`);
 * - updated: messages below the old UIDNEXT whose MODSEQ grew (`UID FETCH ... (CHANGEDSINCE m VANISHED)`),
 *   oldest change first, at most `limit` per answer;
 * - destroyed: the `VANISHED (EARLIER)` UIDs of that same FETCH (RFC 7162 §3.2.6). A server may
 *   report a UID the client never saw; clients drop ids they do not know.
 * When more than `limit` messages changed, the answer's state stops at the last change it reports
 * and `hasMore` is true: calling again with that state continues. Reporting a change twice is
 * possible across such calls (clients upsert), missing one is not.
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { encodeImapState, type ImapState } from '../cursor.js';
import { notSupported } from '../mail-errors.js';
import { encodeImapMessageId } from '../message-id.js';
import type { MailboxChangesResult, MessageSummary } from '../types.js';
import { mailboxState, selectedMailbox } from './listing.js';
import { fetchSummaries } from './summary.js';

/** Without QRESYNC's VANISHED (RFC 7162 §3.2.6) a server cannot tell which messages went away. */
export function lacksQresync(): GatewayError {
  return notSupported('This server lacks QRESYNC (RFC 7162), so deletions since a state cannot be told');
}

export async function changesSince(client: ImapFlow, since: ImapState, limit: number): Promise<MailboxChangesResult> {
  const mailbox = selectedMailbox(client);
  const uidValidity = mailbox.uidValidity;
  if (since.uidValidity !== String(uidValidity)) {
    throw new GatewayError('STATE_TOO_OLD', 'The mailbox was rebuilt (UIDVALIDITY changed) since this state; list it again from the start');
  }
  if (since.highestModseq === null || mailbox.highestModseq === undefined || mailbox.noModseq) {
    throw new GatewayError('STATE_TOO_OLD', 'This state carries no MODSEQ to compare with; list the mailbox again');
  }
  if (!client.enabled.has('QRESYNC')) {
    throw lacksQresync();
  }
  const current = mailboxState(mailbox);
  const sinceModseq = BigInt(since.highestModseq);
  const id = (uid: number): string => encodeImapMessageId(uidValidity, uid);

  const created: number[] = [];
  if (mailbox.uidNext > since.uidNext) {
    const found = await client.search({ uid: `${since.uidNext}:*` }, { uid: true });
    // `n:*` also matches the highest UID when it is below n (RFC 9051 §9, seq-range).
    if (Array.isArray(found)) created.push(...found.filter((uid) => uid >= since.uidNext));
  }

  const changed: Array<{ uid: number; modseq: bigint }> = [];
  const destroyed: number[] = [];
  if (since.uidNext > 1 && (mailbox.highestModseq > sinceModseq || mailbox.exists !== since.exists)) {
    const onExpunge = (event: { uid?: number; vanished?: boolean; earlier?: boolean }): void => {
      if (event.vanished && event.earlier && event.uid !== undefined && event.uid < since.uidNext) destroyed.push(event.uid);
    };
    client.on('expunge', onExpunge);
    try {
      for await (const msg of client.fetch(`1:${since.uidNext - 1}`, { uid: true, flags: true }, { uid: true, changedSince: sinceModseq })) {
        if (msg.modseq !== undefined && msg.modseq > sinceModseq) changed.push({ uid: msg.uid, modseq: msg.modseq });
      }
    } finally {
      client.off('expunge', onExpunge);
    }
  }

  changed.sort((a, b) => (a.modseq < b.modseq ? -1 : a.modseq > b.modseq ? 1 : 0));
  const hasMore = changed.length > limit;
  const reported = changed.slice(0, limit);
  const updated: MessageSummary[] = reported.length > 0 ? await fetchSummaries(client, reported.map((c) => c.uid).join(','), uidValidity, true) : [];
  const last = reported[reported.length - 1];
  const state =
    hasMore && last !== undefined
      ? encodeImapState({
          uidValidity: String(uidValidity),
          uidNext: mailbox.uidNext,
          exists: mailbox.exists,
          highestModseq: String(last.modseq),
        })
      : current;
  return {
    created: created.sort((a, b) => a - b).map(id),
    updated,
    destroyed: [...new Set(destroyed)].sort((a, b) => a - b).map(id),
    state,
    hasMore,
  };
}
