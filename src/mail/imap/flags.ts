/**
 * Flag changes on one message (UID STORE, RFC 9051 §6.4.6). Keywords are checked against the
 * mailbox's PERMANENTFLAGS first: imapflow would silently drop a keyword the mailbox does not
 * accept, and a caller must hear that it was not stored.
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { messageNotFound } from '../mail-errors.js';
import type { ExpectedStates, FlagChanges } from '../types.js';
import { storeUnchangedSince } from './conditional-store.js';
import { selectedMailbox } from './listing.js';
import { withMessageLock } from './message-lock.js';
import { checkExpectedStates, messageChangedMeanwhile, syncForCheck } from './precondition.js';

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

export interface FlagPlan {
  add: string[];
  remove: string[];
}

/** Applies the change to `uid` in the selected mailbox. */
export async function storeFlags(client: ImapFlow, uid: number, changes: FlagPlan): Promise<void> {
  checkPermanent(client, changes);
  if (changes.add.length > 0) await storeOrFail(client.messageFlagsAdd(String(uid), changes.add, { uid: true }));
  if (changes.remove.length > 0) await storeOrFail(client.messageFlagsRemove(String(uid), changes.remove, { uid: true }));
}

/**
 * PATCH under `If-Match` (decision 0010), with this message's write lock held: sync, find the message
 * (404 before 412), check the state, then store. With CONDSTORE the STORE itself is conditional
 * (UNCHANGEDSINCE the state's HIGHESTMODSEQ); without, check and store are two commands.
 */
export async function storeFlagsIfCurrent(client: ImapFlow, uid: number, changes: FlagPlan, expected: ExpectedStates): Promise<void> {
  await withMessageLock(client, uid, async () => {
    await syncForCheck(client);
    const msg = await client.fetchOne(String(uid), { uid: true, flags: true }, { uid: true });
    if (!msg || msg.uid !== uid) throw messageNotFound();
    const { unchangedSince } = await checkExpectedStates(client, expected);
    if (unchangedSince === null) return storeFlags(client, uid, changes);
    if (!(await storeFlagsUnchangedSince(client, uid, msg.flags ?? new Set(), changes, unchangedSince))) {
      throw messageChangedMeanwhile();
    }
  });
}

/**
 * Applies the change as one `UID STORE … (UNCHANGEDSINCE <modseq>) FLAGS (…)` (RFC 7162 §3.1.3): the
 * message's flags as just fetched (`current`) with the change made, stored only if nobody changed the
 * message since `unchangedSince`. One command, so adding and removing cannot half happen either.
 * False when the server refused (MODIFIED): nothing was stored.
 */
async function storeFlagsUnchangedSince(
  client: ImapFlow,
  uid: number,
  current: ReadonlySet<string>,
  changes: FlagPlan,
  unchangedSince: bigint,
): Promise<boolean> {
  checkPermanent(client, changes);
  const removed = new Set(changes.remove.map((f) => f.toLowerCase()));
  const next = new Map<string, string>();
  // `\Recent` belongs to the server and cannot be stored (RFC 9051 §2.3.2).
  for (const flag of [...current, ...changes.add]) {
    const key = flag.toLowerCase();
    if (key !== '\\recent' && !removed.has(key)) next.set(key, flag);
  }
  return storeUnchangedSince(client, uid, 'FLAGS', [...next.values()], unchangedSince);
}

/** A keyword the mailbox cannot store is refused, not dropped as imapflow would. */
function checkPermanent(client: ImapFlow, changes: FlagPlan): void {
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
}

async function storeOrFail(result: Promise<boolean>): Promise<void> {
  if (!(await result)) throw new GatewayError('UPSTREAM_ERROR', 'The mail server refused to store the flags');
}
