/**
 * Flag changes on one message (UID STORE, RFC 9051 §6.4.6). Keywords are checked against the
 * mailbox's PERMANENTFLAGS first: imapflow would silently drop a keyword the mailbox does not
 * accept, and a caller must hear that it was not stored.
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import type { FlagChanges } from '../types.js';
import { selectedMailbox } from './listing.js';


const SYSTEM_FLAGS: Record<'seen' | 'flagged' | 'answered' | 'draft', string> = {
  seen: '\\Seen',
  flagged: '\\Flagged',
  answered: '\\Answered',
  draft: '\\Draft',
};

/** System flags a client may set; `\Recent` is server-owned, `\Deleted` goes through DELETE. */
const SETTABLE_SYSTEM_FLAGS = new Set(['\\seen', '\\flagged', '\\answered', '\\draft']);

export function flagsToAddAndRemove(changes: FlagChanges): { add: string[]; remove: string[] } {
  const add = new Set<string>();
  const remove = new Set<string>();
  for (const [field, flag] of Object.entries(SYSTEM_FLAGS) as Array<[keyof typeof SYSTEM_FLAGS, string]>) {
    if (changes[field] === true) add.add(flag);
    if (changes[field] === false) remove.add(flag);
  }
  for (const flag of changes.addFlags ?? []) add.add(canonicalFlag(flag));
  for (const flag of changes.removeFlags ?? []) remove.add(canonicalFlag(flag));
  for (const flag of add) {
    if (remove.has(flag)) {
      throw new GatewayError('VALIDATION_FAILED', `body asks to both add and remove ${flag}`);
    }
  }
  return { add: [...add], remove: [...remove] };
}

/** `\seen` → `\Seen`; keywords keep their spelling. */
function canonicalFlag(flag: string): string {
  if (!flag.startsWith('\\')) return flag;
  const lower = flag.toLowerCase();
  if (!SETTABLE_SYSTEM_FLAGS.has(lower)) {
    throw new GatewayError(
      'VALIDATION_FAILED',
      `${flag} cannot be set here: use seen, flagged, answered, draft, or a keyword (DELETE removes a message)`,
    );
  }
  return `\\${lower.charAt(1).toUpperCase()}${lower.slice(2)}`;
}

/** Applies the change to `uid` in the selected mailbox. */
export async function storeFlags(client: ImapFlow, uid: number, changes: { add: string[]; remove: string[] }): Promise<void> {
  const mailbox = selectedMailbox(client);
  const permanent = mailbox.permanentFlags;
  if (permanent !== undefined && !permanent.has('\\*')) {
    const allowed = new Set([...permanent].map((f) => f.toLowerCase()));
    const refused = changes.add.filter((f) => !allowed.has(f.toLowerCase()));
    if (refused.length > 0) {
      throw new GatewayError(
        'FLAG_NOT_ALLOWED',
        `This mailbox does not store ${refused.join(', ')} (its PERMANENTFLAGS are ${[...permanent].join(' ') || 'empty'})`,
      );
    }
  }
  if (changes.add.length > 0) await storeOrFail(client.messageFlagsAdd(String(uid), changes.add, { uid: true }));
  if (changes.remove.length > 0) await storeOrFail(client.messageFlagsRemove(String(uid), changes.remove, { uid: true }));
}

async function storeOrFail(result: Promise<boolean>): Promise<void> {
  if (!(await result)) throw new GatewayError('UPSTREAM_ERROR', 'The mail server refused to store the flags');
}
