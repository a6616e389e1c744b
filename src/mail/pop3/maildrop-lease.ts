/**
 * The seam for holding a maildrop across gateway replicas.
 *
 * POP3 allows one session per maildrop (RFC 1939 §8), and Dovecot does not even lock by default
 * (`pop3_lock_session = no`), so the gateway serialises its own sessions. Within one process the
 * session manager (sessions.ts) does it with a queue. Across replicas a shared lease is needed: with Redis,
 * src/coordination/maildrop-lease.ts holds a session slot capped at one per maildrop, renewed while
 * held, and plugs in here. The manager takes the lease before it logs in and gives it back after QUIT or after
 * dropping the connection, so while one replica holds a session no other replica opens one.
 */
import { GatewayError } from '../../errors.js';

export interface MaildropLeaseHandle {
  /** Gives the maildrop back (idempotent; never throws). */
  release(): Promise<void>;
}

export interface MaildropLease {
  /**
   * Waits up to `waitMs` for the right to open a session on `maildropKey` (an opaque key naming
   * the server and user). Rejects with POOL_EXHAUSTED (Retry-After) when it is not had in time.
   */
  acquire(maildropKey: string, waitMs: number): Promise<MaildropLeaseHandle>;
}

/** The single-process default: the in-process queue already serialises, nothing more to hold. */
export const processLocalLease: MaildropLease = {
  acquire: () => Promise.resolve({ release: () => Promise.resolve() }),
};

export function maildropBusyError(retryAfterSeconds = 1): GatewayError {
  return new GatewayError(
    'POOL_EXHAUSTED',
    'The POP3 maildrop is busy with other requests (POP3 allows one session at a time); retry shortly',
    { retryAfterSeconds },
  );
}
