/**
 * Per-account pool of imapflow sessions (ARCHITECTURE.md, Pool).
 *
 * imapflow keeps one command in flight per connection and cannot reconnect, so concurrency comes
 * from several sessions, each leased to one request at a time:
 * - at most `maxSessions` per account, counting those still connecting;
 * - a request goes to an idle session that already has its mailbox selected (a SELECT of a large
 *   mailbox costs far more than the request), else to a new session while under the cap, else to
 *   the least recently used idle session (which then re-selects);
 * - streams (a download's chunk in flight; between chunks a download holds nothing) may hold at most
 *   `maxSessions - 1` sessions, so a listing never waits behind transfers;
 * - a session that errs is evicted and never handed out again; idle sessions log out after a TTL;
 * - a waiter gives up after `acquireTimeoutMs` with `POOL_EXHAUSTED`.
 */
import type { ImapFlow } from 'imapflow';
import type { Logger } from 'pino';
import { GatewayError } from '../../errors.js';
import type { Slot } from '../../coordination/session-slots.js';

export type LeaseKind = 'command' | 'stream';

/**
 * The pool was closed while a request waited for (or was opening) a session: the account's
 * connection settings changed, or the gateway is stopping. The backend retries on the account's
 * new pool in the first case; in the second the request answers 503 and may be sent again.
 */
export class PoolClosed extends GatewayError {
  constructor() {
    super('SERVICE_UNAVAILABLE', "The account's mail sessions were closed while this request waited (its settings changed, or the gateway is stopping); retry", {
      retryAfterSeconds: 1,
    });
    this.name = 'PoolClosed';
  }
}

export interface PoolOptions {
  maxSessions: number;
  idleTimeoutMs: number;
  acquireTimeoutMs: number;
  /** Bound on LOGOUT when closing sessions. */
  logoutTimeoutMs: number;
  connect: () => Promise<ImapFlow>;
  /**
   * A slot for one more session, counted across gateway processes (src/coordination); null when
   * the account's sessions are all held elsewhere. Absent: this pool's own count is the cap.
   */
  acquireSlot?: () => Promise<Slot | null>;
  log: Logger;
}

/** While other processes hold every slot, a new session is tried again after this long. */
const SLOT_RETRY_MS = 200;

export interface PoolStats {
  open: number;
  busy: number;
  connecting: number;
  waiting: number;
  streams: number;
}

class PooledSession {
  busy = false;
  kind: LeaseKind = 'command';
  evicted = false;
  lastUsedMs = Date.now();
  idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly client: ImapFlow,
    readonly slot: Slot,
  ) {}

  get selectedPath(): string | null {
    return this.client.mailbox ? this.client.mailbox.path : null;
  }
}

export interface Lease {
  readonly client: ImapFlow;
  /**
   * True for a session that sat idle in the pool, false for one connected for this lease. A server
   * may have hung up on an idle session with its BYE still unread (a restart, an admin kick): the
   * first command then fails with a lost connection, and only on a reused session is one retry on
   * a fresh session worth it (as undici retries idempotent requests on a reused keep-alive socket).
   */
  readonly reused: boolean;
  /** Returns the session to the pool (idempotent). A broken connection is evicted instead. */
  release(): void;
  /** Drops the session: its connection is closed and never reused. */
  evict(): void;
}

/** What a caller asked for, carried unchanged through retries (so its deadline holds). */
interface Want {
  mailbox: string | null;
  kind: LeaseKind;
  anyIdle: boolean;
  /** When a caller still without a session is answered POOL_EXHAUSTED. */
  deadlineMs: number;
}

interface Waiter extends Want {
  resolve: (lease: Lease) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class AccountPool {
  private readonly sessions = new Set<PooledSession>();
  private connecting = 0;
  private waiters: Waiter[] = [];
  private closed = false;
  /** Set while other processes hold every slot; cleared by a timer to try again. */
  private slotsFullUntilMs = 0;

  constructor(private readonly options: PoolOptions) {}

  stats(): PoolStats {
    let busy = 0;
    let streams = 0;
    for (const s of this.sessions) {
      if (s.busy) busy += 1;
      if (s.busy && s.kind === 'stream') streams += 1;
    }
    return { open: this.sessions.size, busy, connecting: this.connecting, waiting: this.waiters.length, streams };
  }

  /**
   * Leases a session, preferably one with `mailbox` already selected (or none); while no idle one
   * fits and the pool has room, a new session is opened for it. With `anyIdle` the caller will not
   * select the mailbox (a STATUS does instead), so any idle session does before a new one.
   */
  acquire(mailbox: string | null, kind: LeaseKind = 'command', options: { anyIdle?: boolean } = {}): Promise<Lease> {
    if (this.closed) return Promise.reject(new PoolClosed());
    const want: Want = { mailbox, kind, anyIdle: options.anyIdle ?? false, deadlineMs: Date.now() + this.options.acquireTimeoutMs };
    const immediate = this.tryLease(want);
    if (immediate !== null) return immediate;
    return this.wait(want);
  }

  private wait(want: Want): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        ...want,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(
            new GatewayError(
              'POOL_EXHAUSTED',
              `All ${this.options.maxSessions} sessions of this account are busy; retry shortly`,
              { retryAfterSeconds: 1 },
            ),
          );
        }, Math.max(0, want.deadlineMs - Date.now())),
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * A mailbox was deleted or renamed: sessions that have it selected would fail their next command,
   * so idle ones are closed now and busy ones when they come back.
   */
  forgetMailbox(path: string): void {
    for (const session of [...this.sessions]) {
      if (session.selectedPath !== path) continue;
      if (session.busy) session.evicted = true;
      else this.evict(session);
    }
  }

  /** Another process waits for a slot of this account: give back the least recently used idle session. */
  releaseIdleSession(): void {
    const idle = [...this.sessions].filter((s) => !s.busy && !s.evicted);
    if (idle.length === 0) return;
    const leastRecent = idle.reduce((a, b) => (a.lastUsedMs <= b.lastUsedMs ? a : b));
    void this.logout(leastRecent);
  }

  /** Logs every session out (bounded) and rejects waiters; busy sessions are closed as they return. */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new PoolClosed());
    }
    const idle = [...this.sessions].filter((s) => !s.busy);
    await Promise.all(idle.map((s) => this.logout(s)));
  }

  /** A lease now, a pending lease (a new connection), or null when the caller has to wait. */
  private tryLease(want: Want): Promise<Lease> | null {
    const { mailbox, kind, anyIdle } = want;
    if (kind === 'stream' && this.streamsAtCap()) return null;
    // imapflow's `usable` turns false as soon as it has seen the connection end, which may be before
    // its 'close' event reaches onSessionClosed: such a session is dropped here, never handed out.
    for (const s of [...this.sessions]) if (!s.busy && !s.client.usable) this.discard(s);
    const idle = [...this.sessions].filter((s) => !s.busy && !s.evicted);
    // An idle session with the mailbox selected; else one with none selected (selecting costs the
    // same there as on a new session); with anyIdle, the most recently used (the rest may idle out).
    const selected =
      idle.find((s) => mailbox === null || s.selectedPath === mailbox) ??
      idle.find((s) => s.selectedPath === null) ??
      (anyIdle && idle.length > 0 ? idle.reduce((a, b) => (a.lastUsedMs >= b.lastUsedMs ? a : b)) : undefined);
    if (selected !== undefined) return Promise.resolve(this.lease(selected, kind, true));
    const slotsFull = Date.now() < this.slotsFullUntilMs;
    if (!slotsFull && this.sessions.size + this.connecting < this.options.maxSessions) return this.openSession(want);
    if (idle.length > 0) {
      const leastRecent = idle.reduce((a, b) => (a.lastUsedMs <= b.lastUsedMs ? a : b));
      return Promise.resolve(this.lease(leastRecent, kind, true));
    }
    return null;
  }

  private streamsAtCap(): boolean {
    const streamCap = Math.max(1, this.options.maxSessions - 1);
    return this.stats().streams >= streamCap;
  }

  private async openSession(want: Want): Promise<Lease> {
    const { kind } = want;
    this.connecting += 1;
    const slot = this.options.acquireSlot ? await this.options.acquireSlot() : { release: () => undefined };
    if (slot === null) {
      // Other gateway processes hold the account's remaining sessions: wait for one of ours to
      // come free, and try for a slot again shortly.
      this.connecting -= 1;
      this.slotsFullUntilMs = Date.now() + SLOT_RETRY_MS;
      // The retry clears the mark itself: a timer may fire a millisecond before Date.now() reaches
      // the mark, and a retry that still saw "full" would leave the waiters to time out.
      setTimeout(() => {
        this.slotsFullUntilMs = 0;
        this.serveWaiters();
      }, SLOT_RETRY_MS).unref();
      // Back in line with the deadline it came with, so a caller is never kept past it.
      return this.wait(want);
    }
    let client: ImapFlow;
    try {
      client = await this.options.connect();
    } catch (err) {
      this.connecting -= 1;
      slot.release();
      // The place this attempt held is free again: someone waiting may try (and report) for itself.
      this.serveWaiters();
      throw err;
    }
    this.connecting -= 1;
    const session = new PooledSession(client, slot);
    this.sessions.add(session);
    client.on('close', () => this.onSessionClosed(session));
    if (this.closed) {
      void this.logout(session);
      throw new PoolClosed();
    }
    return this.lease(session, kind, false);
  }

  private lease(session: PooledSession, kind: LeaseKind, reused: boolean): Lease {
    clearTimeout(session.idleTimer);
    session.idleTimer = undefined;
    session.busy = true;
    session.kind = kind;
    let done = false;
    return {
      client: session.client,
      reused,
      release: () => {
        if (done) return;
        done = true;
        this.onRelease(session);
      },
      evict: () => {
        if (done) return;
        done = true;
        this.evict(session);
      },
    };
  }

  private onRelease(session: PooledSession): void {
    session.busy = false;
    session.lastUsedMs = Date.now();
    if (session.evicted || !session.client.usable) {
      this.evict(session);
      return;
    }
    if (this.closed) {
      void this.logout(session);
      return;
    }
    this.serveWaiters();
    if (!session.busy) {
      session.idleTimer = setTimeout(() => void this.logout(session), this.options.idleTimeoutMs);
      session.idleTimer.unref();
    }
  }

  /** Hands free sessions (or free slots) to waiters, oldest first. */
  private serveWaiters(): void {
    for (const waiter of [...this.waiters]) {
      const pending = this.tryLease(waiter);
      if (pending === null) continue;
      this.waiters = this.waiters.filter((w) => w !== waiter);
      clearTimeout(waiter.timer);
      pending.then(waiter.resolve, waiter.reject);
    }
  }

  private evict(session: PooledSession): void {
    if (!this.sessions.has(session)) return;
    this.discard(session);
    this.serveWaiters();
  }

  /** Removes and closes a session without serving waiters (safe to call from tryLease). */
  private discard(session: PooledSession): void {
    session.evicted = true;
    session.busy = false;
    clearTimeout(session.idleTimer);
    this.sessions.delete(session);
    session.slot.release();
    session.client.close();
  }

  private onSessionClosed(session: PooledSession): void {
    if (!this.sessions.has(session)) return;
    this.options.log.debug({ open: this.sessions.size - 1 }, 'imap session closed by the server or network');
    if (session.busy) {
      // The lease holder sees its command fail; the session leaves the pool when released.
      session.evicted = true;
      return;
    }
    this.evict(session);
  }

  private async logout(session: PooledSession): Promise<void> {
    session.evicted = true;
    clearTimeout(session.idleTimer);
    this.sessions.delete(session);
    const timer = setTimeout(() => session.client.close(), this.options.logoutTimeoutMs);
    try {
      await session.client.logout();
    } catch {
      session.client.close();
    } finally {
      clearTimeout(timer);
      session.slot.release();
    }
    this.serveWaiters();
  }
}
