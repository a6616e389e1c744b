/**
 * NOTIFY (RFC 5465): the server pushes what changes in every mailbox of the account, not only in
 * the selected one, so changes outside INBOX are seen as they happen instead of at the next poll.
 *
 * imapflow has no NOTIFY command, so it is sent through imapflow's generic command path, and the
 * unsolicited `STATUS` and `LIST` responses it brings are caught by the connection's untagged
 * handlers (imapflow routes an untagged response that no running command claims to them). The
 * watcher does not parse them: any such push means "some mailbox moved", and one LIST-STATUS then
 * tells which (mailbox-list.ts), so paths are always decoded by imapflow itself.
 */
import type { ImapFlow } from 'imapflow';

/** The slice of imapflow's connection internals used here (stable across imapflow 1.x and 2.x). */
interface ImapFlowInternals {
  exec(
    command: string,
    attributes: unknown[],
    options?: { untagged?: Record<string, (untagged: { attributes?: Array<{ value?: unknown } | unknown[]> }) => unknown> },
  ): Promise<{ next?: () => void }>;
  untaggedHandlers: Record<string, ((untagged: unknown) => unknown) | null | undefined>;
}

const atom = (value: string): { type: 'ATOM'; value: string } => ({ type: 'ATOM', value });

export function offersNotify(client: ImapFlow): boolean {
  return client.capabilities.has('NOTIFY');
}

/**
 * `NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (PERSONAL (MessageNew
 * MessageExpunge FlagChange MailboxName))`: for the selected mailbox the usual EXISTS / EXPUNGE /
 * FETCH, for every other personal mailbox a STATUS when its messages or flags change (with
 * CONDSTORE enabled, a flag change moves HIGHESTMODSEQ, RFC 5465 §5.2), and a LIST when a mailbox
 * is created, deleted or renamed (§5.4). `onPush` is called for each STATUS and LIST pushed.
 */
export async function enableNotify(client: ImapFlow, onPush: () => void): Promise<void> {
  const internals = client as unknown as ImapFlowInternals;
  internals.untaggedHandlers.STATUS = () => onPush();
  internals.untaggedHandlers.LIST = () => onPush();
  const response = await internals.exec('NOTIFY', [
    atom('SET'),
    [atom('SELECTED'), [atom('MessageNew'), [atom('UID'), atom('FLAGS')], atom('MessageExpunge'), atom('FlagChange')]],
    [atom('PERSONAL'), [atom('MessageNew'), atom('MessageExpunge'), atom('FlagChange'), atom('MailboxName')]],
  ]);
  // imapflow holds the reader until the command's handler lets go of the response.
  response.next?.();
}

/**
 * The names of the account's mailboxes as the server sends them (modified UTF-7, RFC 3501 §5.1.3),
 * from a plain `LIST "" "*"` that claims only LIST responses: a STATUS pushed meanwhile still reaches
 * the connection's handler (imapflow's own `list()` would take it). A pushed change of the folder
 * list can reach a look on another session before that session's LIST shows it, so for a while after
 * each push the watcher compares these names, as this session sees them, with what its last look saw;
 * they are only compared with each other, never decoded.
 */
export async function listedNames(client: ImapFlow): Promise<string> {
  const internals = client as unknown as ImapFlowInternals;
  const names: string[] = [];
  const response = await internals.exec('LIST', [{ type: 'STRING', value: '' }, { type: 'STRING', value: '*' }], {
    untagged: {
      LIST: (untagged) => {
        const attributes = untagged.attributes ?? [];
        const flags = Array.isArray(attributes[0]) ? attributes[0].map((f) => String((f as { value?: unknown }).value ?? '')) : [];
        const name = (attributes[2] as { value?: unknown } | undefined)?.value;
        // A LIST pushed by NOTIFY while this one runs lands here: a deleted (\NonExistent) or
        // renamed (extended data, RFC 5258 OLDNAME) mailbox must not look like an unchanged list.
        if (flags.some((f) => /^\\nonexistent$/i.test(f)) || attributes.length > 3) names.push(`\u0001pushed${names.length}`);
        else if (name !== undefined) names.push(String(name));
      },
    },
  });
  response.next?.();
  return names.sort().join('\u0000');
}
