/**
 * LIST (with LIST-STATUS, RFC 5819, when counts are asked for) → the API's mailbox list.
 * imapflow decodes modified UTF-7 (RFC 3501 §5.1.3) so paths here are plain UTF-8.
 */
import type { ImapFlow, ListResponse } from 'imapflow';
import type { MailboxInfo } from '../types.js';

export async function listMailboxes(client: ImapFlow, withCounts: boolean): Promise<MailboxInfo[]> {
  const listed = await client.list(
    withCounts ? { statusQuery: { messages: true, unseen: true, uidNext: true, uidValidity: true } } : {},
  );
  const infos = listed.map((entry) => toMailboxInfo(entry, withCounts));
  return addMissingParents(infos).sort(byPath);
}

function toMailboxInfo(entry: ListResponse, withCounts: boolean): MailboxInfo {
  const info: MailboxInfo = {
    path: entry.path,
    name: entry.name,
    delimiter: entry.delimiter || null,
    parent: entry.parentPath ? entry.parentPath : null,
    specialUse: entry.specialUse ?? null,
    // imapflow's `extension` is the server's attribute; `user` (hints) is never passed here.
    specialUseSource: entry.specialUse ? (entry.specialUseSource === 'name' ? 'name' : 'attribute') : null,
    // imapflow leaves `subscribed` undefined (not false) for a mailbox that is not subscribed.
    subscribed: entry.subscribed === true,
    flags: [...entry.flags].sort(),
  };
  if (withCounts) {
    const noSelect = [...entry.flags].some((f) => /^\\(noselect|nonexistent)$/i.test(f));
    const status = entry.status;
    info.counts = {
      messages: status?.messages ?? 0,
      unseen: status?.unseen ?? 0,
      uidNext: noSelect ? null : (status?.uidNext ?? null),
      uidValidity: noSelect || status?.uidValidity === undefined ? null : String(status.uidValidity),
    };
  }
  return info;
}

/**
 * A LIST "*" answer may name `a/b/c` without `a/b` when the parent exists only as a hierarchy level
 * (RFC 9051 §6.3.9). API.md lists such parents with `\Noselect`, so clients can draw the tree.
 */
function addMissingParents(infos: MailboxInfo[]): MailboxInfo[] {
  const byPathMap = new Map(infos.map((i) => [i.path, i]));
  for (const info of infos) {
    let parent = info.parent;
    let child = info;
    while (parent !== null && !byPathMap.has(parent)) {
      const delimiter = child.delimiter;
      const cut = delimiter ? parent.lastIndexOf(delimiter) : -1;
      const synthetic: MailboxInfo = {
        path: parent,
        name: cut >= 0 ? parent.slice(cut + (delimiter?.length ?? 0)) : parent,
        delimiter,
        parent: cut >= 0 ? parent.slice(0, cut) : null,
        specialUse: null,
        specialUseSource: null,
        subscribed: false,
        flags: ['\\Noselect'],
        ...(info.counts ? { counts: { messages: 0, unseen: 0, uidNext: null, uidValidity: null } } : {}),
      };
      byPathMap.set(parent, synthetic);
      child = synthetic;
      parent = synthetic.parent;
    }
  }
  return [...byPathMap.values()];
}

/** INBOX first, then by path. */
function byPath(a: MailboxInfo, b: MailboxInfo): number {
  if (a.path === 'INBOX') return -1;
  if (b.path === 'INBOX') return 1;
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}
