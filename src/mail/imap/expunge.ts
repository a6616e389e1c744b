/**
 * Deleting one message: `\Deleted` and `UID EXPUNGE <uid>` (UIDPLUS, RFC 4315 §2.1), which removes
 * that message only. A plain EXPUNGE would also remove every other message some client had flagged
 * `\Deleted`, so without UIDPLUS the gateway refuses (decision 0006).
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { messageNotFound, notSupported } from '../mail-errors.js';
import { syncView, withMessageLock } from './message-lock.js';

export async function expungeMessage(client: ImapFlow, uid: number): Promise<void> {
  // One write to a message at a time (message-lock.ts): two DELETEs, or a DELETE and a MOVE, of one
  // message must not both answer success.
  await withMessageLock(client, uid, async () => {
    await syncView(client);
    const existing = await client.fetchOne(String(uid), { uid: true }, { uid: true });
    if (!existing || existing.uid !== uid) throw messageNotFound();
    if (!client.capabilities.has('UIDPLUS')) {
      throw notSupported(
        'This server lacks UIDPLUS: deleting one message would expunge every message flagged \\Deleted; move it to Trash instead',
      );
    }
    if (!(await client.messageDelete(String(uid), { uid: true }))) {
      throw new GatewayError('UPSTREAM_ERROR', 'The mail server refused to delete the message');
    }
  });
}
