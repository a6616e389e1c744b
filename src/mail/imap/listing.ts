/**
 * One page of a mailbox listing, newest first (highest UID first: arrival order, RFC 9051 §2.3.1.1).
 * Runs on a session that has the mailbox selected and just synchronised (NOOP or SELECT).
 *
 * Sequence numbers are dense and ordered like UIDs, so the page below an anchor UID is found with
 * one `SEARCH RETURN (COUNT) UID 1:anchor-1` (ESEARCH, RFC 4731) and one FETCH of a sequence range.
 * EXPUNGE responses are not sent during FETCH or SEARCH (RFC 9051 §7.5.1), so the sequence
 * numbers stay valid between the two.
 */
import type { ImapFlow, MailboxObject } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { decodeImapCursor, encodeImapCursor, encodeImapState } from '../cursor.js';
import type { MessageFilters } from '../filters.js';
import type { ListQuery, ListResult, MessagePage, MessageSummary } from '../types.js';
import { cacheable } from './listing-cache.js';
import { encodePageState, type PageFlags } from './page-state.js';
import { highestBelow, toSearchObject } from './search.js';
import { fetchSummaries, visibleFlags } from './summary.js';

export function mailboxState(mailbox: MailboxObject): string {
  return encodeImapState({
    uidValidity: String(mailbox.uidValidity),
    uidNext: mailbox.uidNext,
    exists: mailbox.exists,
    highestModseq: mailbox.highestModseq !== undefined ? String(mailbox.highestModseq) : null,
  });
}

export async function listPage(client: ImapFlow, query: ListQuery): Promise<ListResult> {
  const mailbox = selectedMailbox(client);
  if (!cacheable(mailbox)) {
    if (query.ifNoneMatch !== undefined && (await pageStateNow(client, query)) === query.ifNoneMatch) {
      return { notModified: true, state: query.ifNoneMatch };
    }
    return withPageState(await buildPage(client, query, mailboxState(mailbox)), query);
  }
  const state = mailboxState(mailbox);
  if (query.ifNoneMatch === state) return { notModified: true, state };
  return buildPage(client, query, state);
}

/**
 * Without CONDSTORE (RFC 7162) no mailbox-wide value changes when a flag does, so the state of a
 * page also digests the UIDs and flags it shows (page-state.ts): the ETag then changes whenever
 * anything on the page does, and a 304 can only be answered after fetching it (it still spares the body).
 */
function withPageState(page: MessagePage, query: ListQuery): ListResult {
  const state = encodePageState(page.state, page.messages.map((m) => ({ uid: m.uid ?? 0, flags: m.flags })));
  if (query.ifNoneMatch === state) return { notModified: true, state };
  return { ...page, state };
}

/**
 * Without CONDSTORE: the state the page of an unfiltered query has now, from one FETCH of UID and
 * FLAGS over the page's sequence range (after the SEARCH a cursor's anchor needs), the same value
 * `withPageState` gives the page itself. A cached page or an `If-None-Match` is checked against it
 * without fetching envelopes and structures. With the same UIDVALIDITY, UIDNEXT and EXISTS no message
 * arrived or left, so the range holds the same messages; the digest covers their flags.
 *
 * Null for a filtered query: a flag change outside the page can change which messages match (`seen`),
 * so such a page is always fetched.
 */
export async function pageStateNow(client: ImapFlow, query: ListQuery): Promise<string | null> {
  if (query.filters !== undefined) return null;
  const mailbox = selectedMailbox(client);
  const cursor = query.cursor === undefined ? undefined : decodeImapCursor(query.cursor);
  if (cursor !== undefined && cursor.uidValidity !== String(mailbox.uidValidity)) return null;
  const upperSeq = cursor === undefined ? mailbox.exists : await countBelow(client, cursor.beforeUid);
  const messages: PageFlags[] = [];
  if (upperSeq > 0) {
    const lowerSeq = Math.max(1, upperSeq - query.limit + 1);
    for await (const msg of client.fetch(`${lowerSeq}:${upperSeq}`, { uid: true, flags: true })) {
      // imapflow also yields unsolicited FETCH responses (another client's flag change) during the command.
      if (msg.uid === undefined || msg.seq < lowerSeq || msg.seq > upperSeq) continue;
      messages.push({ uid: msg.uid, flags: visibleFlags(msg.flags) });
    }
  }
  return encodePageState(mailboxState(mailbox), messages.sort((a, b) => b.uid - a.uid));
}

async function buildPage(client: ImapFlow, query: ListQuery, state: string): Promise<MessagePage> {
  const mailbox = selectedMailbox(client);

  const uidValidity = mailbox.uidValidity;
  const cursor = query.cursor === undefined ? undefined : decodeImapCursor(query.cursor);
  if (cursor !== undefined && cursor.uidValidity !== String(uidValidity)) {
    throw new GatewayError('STATE_TOO_OLD', 'The mailbox was rebuilt (UIDVALIDITY changed) since this cursor was issued; list again from the start');
  }
  if (query.filters !== undefined) return filteredPage(client, query, query.filters, cursor?.beforeUid, state);

  let upperSeq = mailbox.exists;
  if (cursor !== undefined) upperSeq = await countBelow(client, cursor.beforeUid);

  const messages = [];
  let lowerSeq = upperSeq + 1;
  if (upperSeq > 0) {
    lowerSeq = Math.max(1, upperSeq - query.limit + 1);
    messages.push(...(await fetchSummaries(client, `${lowerSeq}:${upperSeq}`, uidValidity, false)));
    messages.sort((a, b) => (b.uid ?? 0) - (a.uid ?? 0));
  }
  const oldest = messages[messages.length - 1];
  const nextCursor =
    lowerSeq > 1 && oldest?.uid !== undefined
      ? encodeImapCursor({ uidValidity: String(uidValidity), beforeUid: oldest.uid })
      : null;
  return { messages, nextCursor, total: mailbox.exists, state };
}

/**
 * A filtered page: one `UID SEARCH RETURN (ALL COUNT)` (ESEARCH, RFC 4731) gives the matching UIDs as
 * a compact set and their count (the page's `total`); the page is the `limit` highest UIDs below the
 * anchor, fetched by UID. One more is taken to know whether an older page exists.
 */
async function filteredPage(
  client: ImapFlow,
  query: ListQuery,
  filters: MessageFilters,
  beforeUid: number | undefined,
  state: string,
): Promise<MessagePage> {
  const uidValidity = selectedMailbox(client).uidValidity;
  const result = await client.search(toSearchObject(filters), { uid: true, returnOptions: ['ALL', 'COUNT'] });
  if (result === false || result === undefined) {
    throw new GatewayError('UPSTREAM_ERROR', 'The mail server refused the search');
  }
  const below = beforeUid ?? Number.MAX_SAFE_INTEGER;
  let total: number;
  let uids: number[];
  if (Array.isArray(result)) {
    total = result.length;
    uids = result.filter((uid) => uid < below).sort((a, b) => b - a).slice(0, query.limit + 1);
  } else {
    total = result.count ?? 0;
    uids = result.all ? highestBelow(result.all, below, query.limit + 1) : [];
  }
  const hasOlder = uids.length > query.limit;
  const pageUids = uids.slice(0, query.limit);
  const messages: MessageSummary[] = [];
  if (pageUids.length > 0) {
    messages.push(...(await fetchSummaries(client, pageUids.join(','), uidValidity, true)));
    messages.sort((a, b) => (b.uid ?? 0) - (a.uid ?? 0));
  }
  const oldest = messages[messages.length - 1];
  const nextCursor =
    hasOlder && oldest?.uid !== undefined ? encodeImapCursor({ uidValidity: String(uidValidity), beforeUid: oldest.uid }) : null;
  return { messages, nextCursor, total, state };
}

/** How many messages have a UID below `uid`: they are exactly sequence numbers 1..count. */
async function countBelow(client: ImapFlow, uid: number): Promise<number> {
  if (uid <= 1) return 0;
  const result = await client.search({ uid: `1:${uid - 1}` }, { returnOptions: ['COUNT'] });
  if (result === false || result === undefined) {
    throw new GatewayError('UPSTREAM_ERROR', 'The mail server refused the search that pages the listing');
  }
  return Array.isArray(result) ? result.length : (result.count ?? 0);
}

export function selectedMailbox(client: ImapFlow): MailboxObject {
  if (!client.mailbox) throw new GatewayError('UPSTREAM_ERROR', 'The mailbox is no longer selected');
  return client.mailbox;
}
