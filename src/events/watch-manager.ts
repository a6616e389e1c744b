/**
 * Decides which accounts this process watches (ARCHITECTURE.md, Events). An account is watched
 * while anyone retains it (an SSE stream, later a webhook) in any process, and by exactly one
 * process: the one holding its watch lease (src/coordination/watch-leases.ts). Every
 * `renewIntervalMs` this process
 * - renews the leases it holds, and stops a watch whose lease was lost (so two processes never
 *   watch one account for longer than a renew interval);
 * - says it wants the accounts it has subscribers for, and tries to take the lease of those nobody
 *   holds (a dead owner's lease expires after the TTL, so another process takes over then);
 * - gives up the watches nobody wants any more.
 *
 * An account found deleted (here, or by its watcher or a failed start when another process
 * deleted it) is "gone": its watch stops, its lease is released (so a process that still has
 * subscribers for it tries, fails the same way, and tells them), those retaining it here are told
 * (their streams end), and it is not claimed again until someone retains it anew. Without this a
 * stream following a deleted account stayed open for ever, and this process retried its watch at
 * every renewal, logging a warning each time.
 *
 * The watcher itself is the protocol's (MailService.watch); what it records goes to the event log
 * through the sink built here, which also feeds the metrics.
 */
import type { Logger } from 'pino';
import type { WatchLeases } from '../coordination/watch-leases.js';
import { GatewayError } from '../errors.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AccountWatch, WatchOptions, WatchSink } from '../mail/watch.js';
import type { EventLog, NewEvent, WatchDemand, WatchStateChange } from './types.js';

export interface WatchManagerOptions {
  /** Starts the protocol watcher of an account (MailService.watch). */
  startWatch: (accountId: string, sink: WatchSink, options: WatchOptions) => Promise<AccountWatch>;
  log: EventLog;
  leases: WatchLeases;
  watch: WatchOptions;
  logger: Logger;
  metrics?: Metrics;
}

interface Watched {
  watch: AccountWatch | null;
  starting: Promise<void> | null;
}

export class WatchManager implements WatchDemand {
  /** Local subscribers per account. */
  private readonly demand = new Map<string, number>();
  /** What to call, per account, when it turns out to be deleted (one entry per retain that gave one). */
  private readonly goneListeners = new Map<string, Set<() => void>>();
  /** Accounts known deleted that are still retained here: not claimed until retained anew. */
  private readonly gone = new Set<string>();
  private readonly owned = new Map<string, Watched>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private ticking: Promise<void> | null = null;

  constructor(private readonly options: WatchManagerOptions) {
    this.timer = setInterval(() => void this.tick(), options.leases.renewIntervalMs);
    this.timer.unref();
  }

  retain(accountId: string, onGone?: () => void): () => void {
    // A new request: the account may exist again (re-created under the same id). If it does not,
    // the claim below finds out and tells everyone retaining it again.
    const wasGone = this.gone.delete(accountId);
    this.demand.set(accountId, (this.demand.get(accountId) ?? 0) + 1);
    const listener = onGone === undefined ? undefined : () => onGone();
    if (listener) {
      let listeners = this.goneListeners.get(accountId);
      if (listeners === undefined) this.goneListeners.set(accountId, (listeners = new Set()));
      listeners.add(listener);
    }
    if (this.demand.get(accountId) === 1 || wasGone) void this.claim(accountId);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (listener) {
        const listeners = this.goneListeners.get(accountId);
        listeners?.delete(listener);
        if (listeners?.size === 0) this.goneListeners.delete(accountId);
      }
      const left = (this.demand.get(accountId) ?? 1) - 1;
      if (left > 0) {
        this.demand.set(accountId, left);
        return;
      }
      this.demand.delete(accountId);
      this.gone.delete(accountId);
      // Without Redis nobody else can want it: stop at once. With Redis, the next tick decides
      // (another process's subscriber may still want this process to keep watching).
      void this.options.leases.wanted(accountId).then(
        (wanted) => {
          if (!wanted && !this.demand.has(accountId)) return this.giveUp(accountId);
        },
        () => undefined,
      );
    };
  }

  /** Accounts this process watches now. */
  watching(): string[] {
    return [...this.owned.keys()];
  }

  /** An account was deleted through this process: its watch here stops at once, and its streams end. */
  async forget(accountId: string): Promise<void> {
    await this.accountGone(accountId);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.ticking;
    await Promise.all([...this.owned.keys()].map((id) => this.giveUp(id)));
  }

  private async tick(): Promise<void> {
    if (this.closed || this.ticking) return;
    // Every account at once: the commands go out without waiting for each other, so a thousand watched
    // accounts wait for one round trip per interval rather than a thousand in a row.
    this.ticking = (async () => {
      await Promise.all([...this.owned.keys()].map((accountId) => this.keep(accountId)));
      await Promise.all([...this.demand.keys()].filter((id) => !this.owned.has(id) && !this.gone.has(id)).map((id) => this.claim(id)));
    })();
    try {
      await this.ticking;
    } finally {
      this.ticking = null;
    }
  }

  /** Renews the lease of a watch this process holds while anyone wants it; gives it up otherwise. */
  private async keep(accountId: string): Promise<void> {
    const leases = this.options.leases;
    try {
      const wanted = this.demand.has(accountId) || (await leases.wanted(accountId));
      if (!wanted) return await this.giveUp(accountId);
      if (!(await leases.renew(accountId))) {
        this.options.logger.warn({ account: accountId }, 'watch lease lost to another process; stopping this watcher');
        await this.stopWatch(accountId);
      }
    } catch (err) {
      this.options.logger.warn({ account: accountId, err: { message: (err as Error).message } }, 'could not renew a watch lease');
    }
  }

  /** Says this process wants the account watched and takes the watch if nobody holds it. */
  private async claim(accountId: string): Promise<void> {
    if (this.closed || this.owned.has(accountId) || this.gone.has(accountId)) return;
    try {
      await this.options.leases.want(accountId);
      if (this.owned.has(accountId) || !(await this.options.leases.tryAcquire(accountId))) return;
    } catch (err) {
      this.options.logger.warn({ account: accountId, err: { message: (err as Error).message } }, 'could not take a watch lease; retrying');
      return;
    }
    if (this.closed || this.owned.has(accountId)) {
      await this.options.leases.release(accountId);
      return;
    }
    const entry: Watched = { watch: null, starting: null };
    this.owned.set(accountId, entry);
    this.options.metrics?.watchedAccounts.set(this.owned.size);
    entry.starting = this.options
      .startWatch(accountId, this.sink(accountId), this.options.watch)
      .then(
        (watch) => {
          entry.watch = watch;
        },
        async (err: unknown) => {
          const code = err instanceof GatewayError ? err.code : 'INTERNAL_ERROR';
          this.owned.delete(accountId);
          this.options.metrics?.watchedAccounts.set(this.owned.size);
          await this.options.leases.release(accountId);
          // Deleted (through another process, or while its stream opened): tell its streams, and
          // do not retry it at every renewal.
          if (code === 'ACCOUNT_NOT_FOUND') return void this.accountGone(accountId);
          // Cannot be watched for now: tried again at the next renewal.
          this.options.logger.warn({ account: accountId, code }, 'cannot watch this account');
        },
      )
      .finally(() => {
        entry.starting = null;
      });
    await entry.starting;
  }

  /** The account does not exist any more: stop watching it, let its lease go, tell whoever retains it here. */
  private async accountGone(accountId: string): Promise<void> {
    // Not retained here (watched for another process's subscribers): stopping is all there is to do.
    if (!this.demand.has(accountId)) return this.giveUp(accountId);
    this.gone.add(accountId);
    await this.giveUp(accountId);
    // Only if nobody retained it anew meanwhile (that retain claims it again, and finds out).
    if (!this.gone.has(accountId)) return;
    const listeners = [...(this.goneListeners.get(accountId) ?? [])];
    if (listeners.length > 0) this.options.logger.info({ account: accountId, streams: listeners.length }, 'account deleted: ending what follows it');
    for (const listener of listeners) listener();
  }

  private async giveUp(accountId: string): Promise<void> {
    if (!this.owned.has(accountId)) return;
    await this.stopWatch(accountId);
    await this.options.leases.release(accountId);
  }

  private async stopWatch(accountId: string): Promise<void> {
    const entry = this.owned.get(accountId);
    if (entry === undefined) return;
    this.owned.delete(accountId);
    this.options.metrics?.watchedAccounts.set(this.owned.size);
    await entry.starting;
    await entry.watch?.stop();
  }

  private sink(accountId: string): WatchSink {
    const { log, metrics } = this.options;
    return {
      record: async (events: NewEvent[], changes: WatchStateChange[]) => {
        await log.append(accountId, events, changes);
        const storedAtMs = performance.now();
        for (const event of events) {
          metrics?.eventsStored.inc({ type: event.type });
          if (event.seenAtMs !== undefined) metrics?.eventLag.observe((storedAtMs - event.seenAtMs) / 1000);
        }
      },
      loadStates: () => log.loadStates(accountId),
      loadMessages: (mailbox) => log.loadMessages(accountId, mailbox),
      onReconnect: (cause) => metrics?.watcherReconnects.inc({ cause }),
      gone: () => void this.accountGone(accountId),
    };
  }
}
