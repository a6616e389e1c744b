/**
 * POP3's one-session-per-maildrop rule across gateway processes (RFC 1939 §8; Dovecot does not lock
 * by default): the maildrop lease of src/mail/pop3 backed by session slots with a cap of one.
 * A process that crashes holding it stops renewing, and the slot expires after its TTL.
 */
import { createHash } from 'node:crypto';
import { maildropBusyError, type MaildropLease } from '../mail/pop3/maildrop-lease.js';
import type { SessionSlots } from './session-slots.js';

/** How often a waiting process asks again while another process holds the maildrop. */
const RETRY_MS = 150;

export function slotsMaildropLease(slots: SessionSlots): MaildropLease {
  return {
    async acquire(maildropKey: string, waitMs: number) {
      // Maildrop keys hold host and user name; a digest keeps them out of Redis key syntax.
      const id = `pop3-${createHash('sha256').update(maildropKey).digest('base64url').slice(0, 22)}`;
      const deadline = Date.now() + waitMs;
      for (;;) {
        const slot = await slots.acquire(id, 'pop3', 1);
        if (slot !== null) {
          return {
            release: async () => slot.release(),
          };
        }
        if (Date.now() + RETRY_MS > deadline) throw maildropBusyError();
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    },
  };
}
