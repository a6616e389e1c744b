/**
 * What changed in one mailbox since the watcher last looked: the events to report and the state
 * change that records them (src/events/types.ts).
 *
 * The session must have the mailbox selected and synchronised. How the difference is found depends
 * on what the server offers (RFC 7162):
 * - CONDSTORE + QRESYNC: `UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE m VANISHED)` names exactly the
 *   messages whose flags changed or that arrived since MODSEQ m, and the UIDs expunged since
 *   (`VANISHED (EARLIER)`, RFC 7162 §3.2.6): nothing else is read;
 * - CONDSTORE only: the same FETCH for new and changed messages; expunges are found by comparing the
 *   UID list (`UID SEARCH ALL`) with the stored one, and only when the message count says some went;
 * - neither: every message's UID and flags are fetched and compared with the stored ones.
 * Messages that arrived or changed get their listing summary (one FETCH for all of them), so an
 * event carries what a listing would show.
 */
import type { FetchMessageObject, ImapFlow } from 'imapflow';
import type { MailboxWatchState, NewEvent, WatchStateChange } from '../../../events/types.js';
import { encodeImapMessageId } from '../../message-id.js';
import type { MessageSummary } from '../../types.js';
import { selectedMailbox } from '../listing.js';
import { fetchSummaries, visibleFlags } from '../summary.js';

export interface StoredMailbox {
  state: MailboxWatchState | null;
  /** UID (as a string) → sorted flags, as last recorded. */
  messages: Map<string, string[]>;
}

export interface MailboxDiff {
  events: NewEvent[];
  change: WatchStateChange;
  /** The messages map after this change (the caller keeps it for the next look). */
  messages: Map<string, string[]>;
}

export interface DiffOptions {
  /**
   * No state was ever stored for this account: record what is there without reporting it (a first
   * watch reports what happens from now on, not the whole mailbox as new).
   */
  baseline: boolean;
  /** performance.now() when the change was noticed, for the event-lag metric. */
  seenAtMs: number;
}

/** The summaries of at most this many messages are fetched in one command. */
const SUMMARY_BATCH = 500;

/**
 * The selected mailbox's state now: a NOOP brings the session's view up to date (EXISTS, EXPUNGE,
 * FETCH), then STATUS tells UIDNEXT and HIGHESTMODSEQ, which no untagged response reports reliably
 * (mailbox-sync.ts). The state is read before the changes are fetched, so whatever changes after it
 * is fetched now and again next time, and the stored flags make the second look report nothing.
 */
export async function selectedState(client: ImapFlow): Promise<MailboxWatchState> {
  const mailbox = selectedMailbox(client);
  const condstore = mailbox.highestModseq !== undefined && !mailbox.noModseq;
  await client.noop();
  const answered = await client.status(mailbox.path, { uidValidity: true, uidNext: true, ...(condstore ? { highestModseq: true } : {}) });
  const status: { uidValidity?: bigint; uidNext?: number; highestModseq?: bigint } = answered === false ? {} : answered;
  const view = selectedMailbox(client);
  return {
    uidValidity: String(status.uidValidity ?? view.uidValidity),
    uidNext: status.uidNext ?? view.uidNext,
    highestModseq: condstore && status.highestModseq !== undefined ? String(status.highestModseq) : null,
    messages: view.exists,
  };
}

export async function diffSelectedMailbox(client: ImapFlow, stored: StoredMailbox, state: MailboxWatchState, options: DiffOptions): Promise<MailboxDiff> {
  const mailbox = selectedMailbox(client);
  const path = mailbox.path;
  const uidValidity = BigInt(state.uidValidity);
  const condstore = state.highestModseq !== null;
  const previous = stored.state;
  const sameGeneration = previous !== null && previous.uidValidity === state.uidValidity;

  if (previous !== null && sameGeneration && unchanged(previous, state)) {
    return { events: [], change: { mailbox: path, state }, messages: stored.messages };
  }

  let current: Map<string, string[]>;
  let changedKeys: string[];
  let removedKeys: string[];
  let replace = false;
  if (sameGeneration && condstore && previous.highestModseq !== null) {
    ({ current, changedKeys, removedKeys } = await changedSinceModseq(client, stored.messages, BigInt(previous.highestModseq), mailbox.exists));
  } else {
    current = await allFlags(client);
    replace = true;
    const before = sameGeneration ? stored.messages : new Map<string, string[]>();
    changedKeys = [...current.keys()].filter((key) => !sameFlags(before.get(key), current.get(key)));
    removedKeys = [...before.keys()].filter((key) => !current.has(key));
  }

  const events: NewEvent[] = [];
  const at = new Date().toISOString();
  const event = (type: NewEvent['type'], fields: Record<string, unknown>): NewEvent => ({ type, mailbox: path, at, fields, seenAtMs: options.seenAtMs });
  const report = !options.baseline;

  // A UIDVALIDITY change means every message the clients knew is gone (RFC 9051 §2.3.1.1).
  if (report && previous !== null && !sameGeneration) {
    for (const key of stored.messages.keys()) {
      events.push(event('message.deleted', { messageId: encodeImapMessageId(BigInt(previous.uidValidity), Number(key)) }));
    }
  }
  if (report) {
    for (const key of removedKeys) {
      events.push(event('message.deleted', { messageId: encodeImapMessageId(uidValidity, Number(key)) }));
    }
  }
  const before = sameGeneration ? stored.messages : new Map<string, string[]>();
  if (report && changedKeys.length > 0) {
    const summaries = await summariesByUid(client, changedKeys.map(Number), uidValidity);
    for (const key of changedKeys.sort((a, b) => Number(a) - Number(b))) {
      const summary = summaries.get(Number(key));
      if (summary === undefined) continue; // expunged between the two FETCHes: the next look reports it
      const old = before.get(key);
      if (old === undefined) {
        events.push(event('message.new', { message: summary }));
      } else {
        const now = current.get(key) ?? [];
        events.push(
          event('message.updated', {
            message: summary,
            flags: { added: now.filter((f) => !old.includes(f)), removed: old.filter((f) => !now.includes(f)) },
          }),
        );
      }
    }
  }

  const merged = replace ? current : new Map(stored.messages);
  if (!replace) {
    for (const key of removedKeys) merged.delete(key);
    for (const key of changedKeys) merged.set(key, current.get(key) ?? []);
  }
  const change: WatchStateChange = {
    mailbox: path,
    state,
    ...(replace ? { replace: true, set: [...merged] } : { set: changedKeys.map((key) => [key, merged.get(key) ?? []] as [string, string[]]) }),
    ...(removedKeys.length > 0 && !replace ? { remove: removedKeys } : {}),
  };
  return { events, change, messages: merged };
}

function unchanged(previous: MailboxWatchState, now: MailboxWatchState): boolean {
  if (previous.messages !== now.messages || previous.uidNext > now.uidNext) return false;
  // With CONDSTORE every change (arrival, flag, expunge) raises HIGHESTMODSEQ (RFC 7162 §3.1.1).
  if (previous.highestModseq !== null && now.highestModseq !== null) return previous.highestModseq === now.highestModseq && previous.uidNext === now.uidNext;
  return false;
}

async function changedSinceModseq(
  client: ImapFlow,
  stored: Map<string, string[]>,
  sinceModseq: bigint,
  exists: number,
): Promise<{ current: Map<string, string[]>; changedKeys: string[]; removedKeys: string[] }> {
  const current = new Map<string, string[]>();
  const vanished = new Set<string>();
  const qresync = client.enabled.has('QRESYNC');
  const onExpunge = (e: { uid?: number; vanished?: boolean; earlier?: boolean }): void => {
    if (e.vanished && e.uid !== undefined) vanished.add(String(e.uid));
  };
  client.on('expunge', onExpunge);
  try {
    if (exists > 0 || qresync) {
      for await (const msg of client.fetch('1:*', { uid: true, flags: true }, { uid: true, changedSince: sinceModseq })) {
        if (msg.modseq === undefined || msg.modseq > sinceModseq) current.set(String(msg.uid), flagsOf(msg));
      }
    }
  } catch (err) {
    // `1:*` on an empty mailbox is a BAD on some servers; nothing can have changed in it but expunges.
    if (exists > 0) throw err;
  } finally {
    client.off('expunge', onExpunge);
  }
  const changedKeys = [...current.keys()].filter((key) => !sameFlags(stored.get(key), current.get(key)));
  let removedKeys = [...vanished].filter((key) => stored.has(key) && !current.has(key));
  if (!qresync) {
    // Without VANISHED the count tells whether anything went: stored + arrived − present.
    const arrived = changedKeys.filter((key) => !stored.has(key)).length;
    if (stored.size + arrived !== exists) {
      const present = new Set((await allUids(client)).map(String));
      removedKeys = [...stored.keys()].filter((key) => !present.has(key));
    }
  }
  return { current, changedKeys, removedKeys };
}

async function allFlags(client: ImapFlow): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (selectedMailbox(client).exists === 0) return out;
  for await (const msg of client.fetch('1:*', { uid: true, flags: true }, { uid: true })) out.set(String(msg.uid), flagsOf(msg));
  return out;
}

async function allUids(client: ImapFlow): Promise<number[]> {
  if (selectedMailbox(client).exists === 0) return [];
  const found = await client.search({ all: true }, { uid: true });
  return Array.isArray(found) ? found : [];
}

async function summariesByUid(client: ImapFlow, uids: number[], uidValidity: bigint): Promise<Map<number, MessageSummary>> {
  const out = new Map<number, MessageSummary>();
  for (let i = 0; i < uids.length; i += SUMMARY_BATCH) {
    const batch = uids.slice(i, i + SUMMARY_BATCH);
    for (const summary of await fetchSummaries(client, batch.join(','), uidValidity, true)) out.set(summary.uid!, summary);
  }
  return out;
}

function flagsOf(msg: FetchMessageObject): string[] {
  return visibleFlags(msg.flags).sort();
}

function sameFlags(a: string[] | undefined, b: string[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((f, i) => f === b[i]);
}
