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

/**
 * The selectable mailboxes and their states, as one session sees them, with every entry checked
 * that the LIST alone may get wrong. Dovecot 2.3's mailbox list index lags in a long-lived session
 * after another session deletes or renames a mailbox: for a while, sometimes seconds, LIST still
 * shows the deleted one (its LIST-STATUS answer then carries `* NO Mailbox doesn't exist` instead of
 * a STATUS) or leaves out one that exists. So an entry without a STATUS is asked for it once more,
 * and dropped if the server refuses; and each mailbox in `known` (what the watcher has stored) that
 * the LIST left out is asked for its STATUS before it is taken for deleted. STATUS opens the
 * mailbox itself, not the list index. Deletions are rare, so these extra commands are too.
 */
export async function listChecked(client: ImapFlow, known: Iterable<string> = []): Promise<ListedMailbox[]> {
  const query = statusQuery(client);
  const listed = await client.list({ statusQuery: query });
  const result: ListedMailbox[] = [];
  for (const entry of listed.filter(selectable)) {
    const status = hasStatus(entry.status) ? entry.status : await statusOf(client, entry.path, query);
    if (status !== null) result.push({ path: entry.path, state: stateOf(status) });
  }
  const seen = new Set(result.map((m) => m.path));
  for (const path of known) {
    if (seen.has(path)) continue;
    const status = await statusOf(client, path, query);
    if (status !== null) result.push({ path, state: stateOf(status) });
  }
  return result;
}

type StatusQuery = { messages: true; uidNext: true; uidValidity: true; highestModseq?: true };
type Status = NonNullable<ListResponse['status']>;

function statusQuery(client: ImapFlow): StatusQuery {
  const condstore = client.capabilities.has('CONDSTORE') || client.capabilities.has('QRESYNC');
  return { messages: true, uidNext: true, uidValidity: true, ...(condstore ? { highestModseq: true as const } : {}) };
}

/** imapflow leaves `status` out when LIST-STATUS answered NO for the entry, or sets `{ error }`. */
function hasStatus(status: ListResponse['status'] | { error?: unknown } | undefined): status is Status {
  return status !== undefined && !('error' in status) && (status as Status).uidValidity !== undefined;
}

/** The mailbox's STATUS, or null when the server refuses it (the mailbox does not exist). */
async function statusOf(client: ImapFlow, path: string, query: StatusQuery): Promise<Status | null> {
  try {
    const status = (await client.status(path, query)) as Status | false;
    return status === false || !hasStatus(status) ? null : status;
  } catch (err) {
    // imapflow throws NotFound when a LIST confirms the mailbox is gone; anything else (a lost
    // connection) is the session's failure, not the mailbox's.
    if ((err as { code?: unknown }).code === 'NotFound') return null;
    throw err;
  }
}

function stateOf(status: Status): MailboxWatchState {
  return {
    uidValidity: String(status.uidValidity ?? ''),
    uidNext: status.uidNext ?? 0,
    highestModseq: status.highestModseq !== undefined ? String(status.highestModseq) : null,
    messages: status.messages ?? 0,
  };
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
