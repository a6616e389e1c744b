/**
 * The folder list of a watched account and how it moved since the last look: which mailboxes were
 * created, deleted or renamed, and which of those that stayed have another state now (so only they
 * are fetched). One `LIST ... RETURN (STATUS (...))` (LIST-STATUS, RFC 5819) answers both where
 * the server offers it; imapflow falls back to one STATUS per mailbox where it does not.
 *
 * A rename is told apart from a delete and a create by the UIDVALIDITY: a renamed mailbox keeps
 * it (RFC 9051 §6.3.6 asks servers to keep UIDs across RENAME), a new one gets another.
 */
import type { ImapFlow, ListResponse } from 'imapflow';
import type { MailboxWatchState, NewEvent } from '../../../events/types.js';

export interface ListedMailbox {
  path: string;
  state: MailboxWatchState;
}

export async function listSelectable(client: ImapFlow): Promise<ListedMailbox[]> {
  const condstore = client.capabilities.has('CONDSTORE') || client.capabilities.has('QRESYNC');
  const listed = await client.list({
    statusQuery: { messages: true, uidNext: true, uidValidity: true, ...(condstore ? { highestModseq: true } : {}) },
  });
  return listed.filter(selectable).map((entry) => ({
    path: entry.path,
    state: {
      uidValidity: String(entry.status?.uidValidity ?? ''),
      uidNext: entry.status?.uidNext ?? 0,
      highestModseq: entry.status?.highestModseq !== undefined ? String(entry.status.highestModseq) : null,
      messages: entry.status?.messages ?? 0,
    },
  }));
}

function selectable(entry: ListResponse): boolean {
  return ![...entry.flags].some((f) => /^\\(noselect|nonexistent)$/i.test(f));
}

export interface ListMoves {
  events: NewEvent[];
  created: string[];
  deleted: string[];
  renamed: Array<{ from: string; to: string }>;
  /** Mailboxes present before and now whose state differs (or that are new): to be fetched. */
  moved: string[];
}

/**
 * Compares the stored states with the listed ones. `baseline` (nothing stored yet for this
 * account): no events, every mailbox is looked at once to record it.
 */
export function compareLists(
  stored: Map<string, MailboxWatchState>,
  listed: ListedMailbox[],
  options: { baseline: boolean; seenAtMs: number },
): ListMoves {
  const now = new Map(listed.map((m) => [m.path, m.state]));
  const gone = [...stored.keys()].filter((path) => !now.has(path));
  const fresh = listed.filter((m) => !stored.has(m.path));
  const renamed: Array<{ from: string; to: string }> = [];
  for (const from of [...gone]) {
    const validity = stored.get(from)?.uidValidity;
    const match = fresh.find((m) => m.state.uidValidity !== '' && m.state.uidValidity === validity && !renamed.some((r) => r.to === m.path));
    if (match !== undefined) renamed.push({ from, to: match.path });
  }
  const deleted = gone.filter((path) => !renamed.some((r) => r.from === path));
  const created = fresh.map((m) => m.path).filter((path) => !renamed.some((r) => r.to === path));
  // Without CONDSTORE a flag change moves nothing STATUS reports (RFC 7162 §3.1.1 is what makes
  // HIGHESTMODSEQ move): every mailbox then has its flags compared at each look.
  const moved = listed.filter((m) => {
    const before = stored.get(m.path);
    return before === undefined || !sameState(before, m.state) || m.state.highestModseq === null;
  }).map((m) => m.path);

  const events: NewEvent[] = [];
  if (!options.baseline) {
    const at = new Date().toISOString();
    const event = (type: NewEvent['type'], mailbox: string, fields?: Record<string, unknown>): NewEvent => ({
      type,
      mailbox,
      at,
      seenAtMs: options.seenAtMs,
      ...(fields ? { fields } : {}),
    });
    for (const path of deleted) events.push(event('mailbox.deleted', path));
    for (const r of renamed) events.push(event('mailbox.renamed', r.to, { from: r.from }));
    for (const path of created) events.push(event('mailbox.created', path));
  }
  return { events, created, deleted, renamed, moved };
}

export function sameState(a: MailboxWatchState, b: MailboxWatchState): boolean {
  return a.uidValidity === b.uidValidity && a.uidNext === b.uidNext && a.messages === b.messages && a.highestModseq === b.highestModseq;
}
