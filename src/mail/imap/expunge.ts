/**
 * Deleting one message: `\Deleted` and `UID EXPUNGE <uid>` (UIDPLUS, RFC 4315 §2.1), which removes
 * that message only. A plain EXPUNGE would also remove every other message some client had flagged
 * `\Deleted`, so without UIDPLUS the gateway refuses (decision 0006).
 *
 * Under `If-Match` (decision 0010) the state is checked after a sync, and with CONDSTORE the
 * `\Deleted` STORE carries `UNCHANGEDSINCE` (RFC 7162 §3.1.3): a change to the message after the
 * check makes the server store nothing, and nothing is expunged.
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { messageNotFound, notSupported } from '../mail-errors.js';
import type { ExpectedStates } from '../types.js';
import { storeUnchangedSince } from './conditional-store.js';
import { syncView, withMessageLock } from './message-lock.js';
import { checkExpectedStates, messageChangedMeanwhile, syncForCheck } from './precondition.js';

export async function expungeMessage(client: ImapFlow, uid: number, expected?: ExpectedStates): Promise<void> {
  // One write to a message at a time (message-lock.ts): two DELETEs, or a DELETE and a MOVE, of one
  // message must not both answer success.
  await withMessageLock(client, uid, async () => {
    await (expected === undefined ? syncView(client) : syncForCheck(client));
    const existing = await client.fetchOne(String(uid), { uid: true }, { uid: true });
    if (!existing || existing.uid !== uid) throw messageNotFound();
    if (!client.capabilities.has('UIDPLUS')) {
      throw notSupported(
        'This server lacks UIDPLUS: deleting one message would expunge every message flagged \\Deleted; move it to Trash instead',
      );
    }
    if (expected !== undefined) {
      const { unchangedSince } = await checkExpectedStates(client, expected);
      if (unchangedSince !== null && !(await storeUnchangedSince(client, uid, '+FLAGS', ['\\Deleted'], unchangedSince))) {
        throw messageChangedMeanwhile();
      }
    }
    // Sets `\Deleted` (again, harmlessly, after a conditional STORE) and sends UID EXPUNGE; imapflow
    // keeps the session's HIGHESTMODSEQ from the answer's response code.
    if (!(await client.messageDelete(String(uid), { uid: true }))) {
      throw new GatewayError('UPSTREAM_ERROR', 'The mail server refused to delete the message');
    }
  });
}
