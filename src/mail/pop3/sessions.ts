/**
 * One POP3 session per maildrop at a time, reused only briefly (ARCHITECTURE.md, POP3).
 *
 * - A maildrop is a server and user (`maildropKey`); two accounts naming the same one share its turn.
 * - Requests for a maildrop take turns in FIFO order. At most `maxWaiters` wait; beyond that, or after
 *   `acquireTimeoutMs`, a request fails with POOL_EXHAUSTED (503, Retry-After) instead of hanging.
 * - A session sees the maildrop as it was at login (RFC 1939 §8: a snapshot; new mail needs a new
 *   login), so it is handed to the next request only while it is younger than `reuseMs` (counted from
 *   the login, not the last use); after that it is closed with QUIT. The next session is opened only
 *   after that QUIT was answered: servers that lock the maildrop would otherwise answer `[IN-USE]`.
 * - A session that failed midway (timeout, connection lost, broken answer) is dropped without QUIT, so
 *   nothing marked deleted in it is ever removed by accident (RFC 1939 §6: only QUIT commits).
 * - Across gateway replicas a MaildropLease (maildrop-lease.ts) is held from login to QUIT.
 */
import type { Logger } from 'pino';
import { GatewayError, isGatewayError } from '../../errors.js';
import type { MailAccount } from '../account.js';
import type { Pop3Client } from './client.js';
import { Pop3ReplyError } from './errors.js';
import { maildropBusyError, type MaildropLease, type MaildropLeaseHandle } from './maildrop-lease.js';
import type { Snapshot } from './snapshot.js';

export interface SessionManagerOptions {
  /** Opens a logged-in client for an account. */
  connect(account: MailAccount): Promise<Pop3Client>;
  /** A session is handed on only while younger than this (since its login). */
  reuseMs: number;
  /** How long a request may wait for its turn on the maildrop. */
  acquireTimeoutMs: number;
  /** How many requests may wait per maildrop. */
  maxWaiters: number;
  /** Bound on QUIT when closing a session that is no longer wanted. */
  quitTimeoutMs: number;
  lease: MaildropLease;
  log: Logger;
}

export class Pop3Session {
  /** The maildrop as this session sees it (UIDL + LIST), read at most once per session. */
  snapshot: Snapshot | null = null;
  /** Closed with QUIT when returned (its account was dropped or changed). */
  retired = false;
  readonly loggedInAtMs = Date.now();

  constructor(
    readonly client: Pop3Client,
    readonly accountId: string,
  ) {}
}

export interface SessionLease {
  /** The session (replaced by `renew`). */
  readonly session: Pop3Session;
  /** True when the session was logged in for this lease (its snapshot is as new as it gets). */
  readonly fresh: boolean;
  /** Hands the session on for brief reuse, or QUITs it. Idempotent; a broken session is dropped. */
  release(): void;
  /** Drops the connection without QUIT. Idempotent. */
  discard(): void;
  /** QUIT now (commits DELE, RFC 1939 §6) and end the lease; rejects when the server did not confirm. */
  quit(): Promise<void>;
  /** QUITs this session and logs in again, keeping the maildrop's turn: a newer snapshot. */
  renew(): Promise<void>;
}

export interface SessionStats {
  /** Sessions logged in so far. */
  opened: number;
  /** Sessions open now (idle or leased), over all maildrops. */
  live: number;
  /** The most sessions ever open at once on one maildrop (1 when serialisation holds). */
  maxLivePerMaildrop: number;
  /** Requests waiting for their turn now. */
  waiting: number;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

class Maildrop {
  /** A lease holds the maildrop, or a login or QUIT is in progress. */
  busy = false;
  idle: Pop3Session | null = null;
  idleTimer: NodeJS.Timeout | undefined;
  leased: Pop3Session | null = null;
  waiters: Waiter[] = [];
  live = 0;
  handle: MaildropLeaseHandle | null = null;

  constructor(readonly key: string) {}
}

/** The server and user a session logs into; the port is left out (110 and 995 reach the same maildrop). */
export function maildropKey(account: Pick<MailAccount, 'host' | 'username'>): string {
  return `${account.host.trim().toLowerCase().replace(/\.$/, '')}\n${account.username}`;
}

/** Pause between login attempts while the server answers `[IN-USE]`. */
const IN_USE_RETRY_MS = 500;

export class Pop3SessionManager {
  private readonly maildrops = new Map<string, Maildrop>();
  private closed = false;
  private opened = 0;
  private maxLive = 0;

  constructor(private readonly options: SessionManagerOptions) {}

  stats(): SessionStats {
    let live = 0;
    let waiting = 0;
    for (const drop of this.maildrops.values()) {
      live += drop.live;
      waiting += drop.waiters.length;
    }
    return { opened: this.opened, live, maxLivePerMaildrop: this.maxLive, waiting };
  }

  /**
   * Waits for the maildrop's turn, then leases its idle session when it may be reused, else logs in.
   * `fresh` forces a new login (a verification must check the credentials given).
   */
  async acquire(account: MailAccount, options: { fresh?: boolean } = {}): Promise<SessionLease> {
    if (this.closed) throw new GatewayError('UPSTREAM_ERROR', 'The gateway is shutting down');
    const startedMs = Date.now();
    const drop = this.maildrop(maildropKey(account));
    await this.takeTurn(drop);
    try {
      let session = drop.idle;
      drop.idle = null;
      clearTimeout(drop.idleTimer);
      if (session !== null && (options.fresh || session.accountId !== account.id || !this.reusable(session))) {
        // Replaced by a new login while this request holds the turn: the lease stays held.
        await this.end(drop, session, true, true);
        session = null;
      }
      let fresh = false;
      if (session === null) {
        session = await this.open(drop, account, startedMs);
        fresh = true;
      }
      return this.lease(drop, session, fresh, account);
    } catch (err) {
      this.free(drop);
      throw err;
    }
  }

  /** QUITs the account's idle sessions now; its leased sessions are QUIT when returned. */
  async dropAccount(accountId: string): Promise<void> {
    const ending: Array<Promise<void>> = [];
    for (const drop of this.maildrops.values()) {
      if (drop.leased?.accountId === accountId) drop.leased.retired = true;
      if (drop.idle?.accountId === accountId && !drop.busy) ending.push(this.expireIdle(drop));
    }
    await Promise.all(ending);
  }

  /** Refuses new requests, fails the waiting ones, QUITs idle sessions; leased ones QUIT when returned. */
  async close(): Promise<void> {
    this.closed = true;
    const ending: Array<Promise<void>> = [];
    for (const drop of this.maildrops.values()) {
      for (const waiter of drop.waiters.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(new GatewayError('UPSTREAM_ERROR', 'The gateway is shutting down'));
      }
      if (drop.leased !== null) drop.leased.retired = true;
      if (!drop.busy && drop.idle !== null) ending.push(this.expireIdle(drop));
    }
    await Promise.all(ending);
  }

  // --- turns ------------------------------------------------------------------------------------

  private maildrop(key: string): Maildrop {
    let drop = this.maildrops.get(key);
    if (drop === undefined) {
      drop = new Maildrop(key);
      this.maildrops.set(key, drop);
    }
    return drop;
  }

  private takeTurn(drop: Maildrop): Promise<void> {
    if (!drop.busy && drop.waiters.length === 0) {
      drop.busy = true;
      return Promise.resolve();
    }
    if (drop.waiters.length >= this.options.maxWaiters) return Promise.reject(maildropBusyError());
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          drop.waiters = drop.waiters.filter((w) => w !== waiter);
          reject(maildropBusyError());
        }, this.options.acquireTimeoutMs),
      };
      drop.waiters.push(waiter);
    });
  }

  /** Gives the turn to the next waiter, or forgets the maildrop when nobody needs it. */
  private free(drop: Maildrop): void {
    drop.busy = false;
    drop.leased = null;
    const next = drop.waiters.shift();
    if (next !== undefined) {
      clearTimeout(next.timer);
      drop.busy = true;
      next.resolve();
      return;
    }
    if (drop.idle === null && drop.live === 0 && drop.handle === null) this.maildrops.delete(drop.key);
  }

  private reusable(session: Pop3Session): boolean {
    return (
      !this.closed &&
      !session.retired &&
      session.client.usable &&
      Date.now() - session.loggedInAtMs < this.options.reuseMs
    );
  }

  // --- sessions ---------------------------------------------------------------------------------

  private async open(drop: Maildrop, account: MailAccount, startedMs: number): Promise<Pop3Session> {
    const waitLeftMs = (): number => Math.max(0, this.options.acquireTimeoutMs - (Date.now() - startedMs));
    drop.handle ??= await this.options.lease.acquire(drop.key, waitLeftMs());
    for (;;) {
      try {
        const client = await this.options.connect(account);
        drop.live += 1;
        this.opened += 1;
        this.maxLive = Math.max(this.maxLive, drop.live);
        return new Pop3Session(client, account.id);
      } catch (err) {
        // `[IN-USE]`: another client (or replica without a shared lease) holds the maildrop; it
        // usually lets go within seconds, so try again while the request may still wait.
        const inUse = err instanceof Pop3ReplyError && err.responseCode === 'IN-USE';
        if (inUse && waitLeftMs() > IN_USE_RETRY_MS) {
          await new Promise((resolve) => setTimeout(resolve, IN_USE_RETRY_MS));
          continue;
        }
        if (drop.live === 0) await this.releaseHandle(drop);
        throw err;
      }
    }
  }

  /** Ends a session: QUIT (bounded) when asked and possible, else drop the connection. */
  private async end(drop: Maildrop, session: Pop3Session, quit: boolean, keepHandle = false): Promise<void> {
    const { client } = session;
    if (quit && client.usable) {
      const timer = setTimeout(() => client.destroy(), this.options.quitTimeoutMs);
      try {
        await client.quit();
      } catch (err) {
        this.options.log.debug({ err: isGatewayError(err) ? err.message : String(err) }, 'pop3 QUIT failed');
        client.destroy();
      } finally {
        clearTimeout(timer);
      }
    } else {
      client.destroy();
    }
    drop.live -= 1;
    if (drop.live === 0 && !keepHandle) await this.releaseHandle(drop);
  }

  private async releaseHandle(drop: Maildrop): Promise<void> {
    const handle = drop.handle;
    drop.handle = null;
    await handle?.release();
  }

  /** Idle session past its reuse window (or being closed): QUIT it while holding the turn. */
  private async expireIdle(drop: Maildrop): Promise<void> {
    if (drop.busy || drop.idle === null) return;
    const session = drop.idle;
    drop.idle = null;
    clearTimeout(drop.idleTimer);
    drop.busy = true;
    try {
      await this.end(drop, session, true);
    } finally {
      this.free(drop);
    }
  }

  private lease(drop: Maildrop, first: Pop3Session, fresh: boolean, account: MailAccount): SessionLease {
    let session = first;
    let isFresh = fresh;
    let done = false;
    drop.leased = session;
    const finish = (quit: boolean): void => {
      void this.end(drop, session, quit).finally(() => this.free(drop));
    };
    return {
      get session() {
        return session;
      },
      get fresh() {
        return isFresh;
      },
      release: () => {
        if (done) return;
        done = true;
        if (this.reusable(session)) {
          drop.idle = session;
          drop.leased = null;
          const leftMs = this.options.reuseMs - (Date.now() - session.loggedInAtMs);
          drop.idleTimer = setTimeout(() => void this.expireIdle(drop), Math.max(0, leftMs));
          drop.idleTimer.unref();
          this.free(drop);
        } else {
          finish(true);
        }
      },
      discard: () => {
        if (done) return;
        done = true;
        finish(false);
      },
      quit: async () => {
        if (done) throw new GatewayError('INTERNAL_ERROR', 'The POP3 session was already returned');
        done = true;
        try {
          await session.client.quit();
        } catch (err) {
          session.client.destroy();
          throw err;
        } finally {
          drop.live -= 1;
          if (drop.live === 0) await this.releaseHandle(drop);
          this.free(drop);
        }
      },
      renew: async () => {
        if (done) throw new GatewayError('INTERNAL_ERROR', 'The POP3 session was already returned');
        await this.end(drop, session, true, true);
        try {
          session = await this.open(drop, account, Date.now());
        } catch (err) {
          done = true;
          this.free(drop);
          throw err;
        }
        drop.leased = session;
        isFresh = true;
      },
    };
  }
}
