/**
 * What one SSE client reads: the events of one or many accounts from the event log, from a resume
 * point on, in each account's order, with no duplicate and no gap (API.md, Events).
 *
 * A subscription reads the log, never a watcher: it reads a page after each account's position,
 * then waits for an append hint (`EventLog.onAppend`) or the backstop poll, since a hint can be
 * lost across a Redis reconnect. It reads only when its reader asks for the next item (`next()`),
 * so a reader that stops (a client whose socket is full) stops the reading too: what it holds is
 * at most one page. Accounts are read one page at a time, in turn, so a busy account does not hold
 * the others back by more than a page.
 *
 * While open it retains each account through the WatchDemand, so the account is watched; `close()`
 * gives them up. When the demand says an account was deleted, the subscription closes itself
 * (`deletedAccount` says which): a client that reconnects is then told the account is gone (404),
 * or, on a stream of all its accounts, follows those that are left.
 */
import { compareEventIds, isValidEventId } from './log/event-id.js';
import type { EventLog, EventType, MailEvent, WatchDemand } from './types.js';

export interface SubscriptionOptions {
  log: EventLog;
  demand: WatchDemand;
  /** Every account followed, with the id to start after; `undefined`: from now (the log's latest id). */
  accounts: ReadonlyMap<string, string | undefined>;
  /** Only events of these types are handed out (the others are passed over); every type when absent. */
  types?: ReadonlySet<EventType>;
  /** Every account is read this often even without a hint (hints may be lost). */
  pollIntervalMs: number;
  /** Events asked of the log per read. */
  pageSize?: number;
  /** Told of a failed read; the account is read again at the next hint or poll. */
  onReadError?: (err: unknown, accountId: string) => void;
}

/** An event to send, or the news that events of an account were lost (trimmed before they were read). */
export type StreamItem = { kind: 'event'; event: MailEvent } | { kind: 'lost'; account: string };

const DEFAULT_PAGE_SIZE = 100;

interface AccountState {
  /** The id of the last event handed out or passed over: where a resume continues. */
  passed: string;
  /** The id of the last event read from the log: where the next read continues. */
  readFrom: string;
  /** Read, not yet handed out. */
  buffer: MailEvent[];
  /** `pending`: the log said events were lost, not told yet; `told`: told, nothing read since. */
  lost: 'pending' | 'told' | undefined;
  /** Where to continue once the loss is told, when nothing after it was kept. */
  skipTo: string | undefined;
}

export class Subscription {
  private readonly order: string[];
  private readonly states = new Map<string, AccountState>();
  private readonly dirty = new Set<string>();
  private readonly cleanups: Array<() => void> = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;
  /** Where handing out resumes, so that busy accounts take turns. */
  private turn = 0;
  private pulling = false;
  private isClosed = false;
  private gone: string | undefined;

  private constructor(private readonly options: SubscriptionOptions) {
    this.order = [...options.accounts.keys()];
  }

  /**
   * Retains the accounts, listens for hints and finds each start position. Throws when the log
   * cannot be read (having given everything up again).
   */
  static async open(options: SubscriptionOptions): Promise<Subscription> {
    const subscription = new Subscription(options);
    try {
      await subscription.start();
    } catch (err) {
      subscription.close();
      throw err;
    }
    return subscription;
  }

  get accounts(): readonly string[] {
    return this.order;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** The account whose deletion closed this subscription, if that is what closed it. */
  get deletedAccount(): string | undefined {
    return this.gone;
  }

  /**
   * The next item, waiting as long as it takes; null once closed. One call at a time: the reader
   * asks again after it has sent the item (that is the backpressure).
   */
  async next(): Promise<StreamItem | null> {
    if (this.pulling) throw new Error('Subscription.next() is already waiting');
    this.pulling = true;
    try {
      while (!this.isClosed) {
        const item = this.take();
        if (item !== undefined) return item;
        const account = this.dirty.values().next().value;
        if (account !== undefined) {
          await this.read(account);
          continue;
        }
        await new Promise<void>((resolve) => (this.wakeUp = resolve));
      }
      return null;
    } finally {
      this.pulling = false;
    }
  }

  /**
   * For each account, the id of the last event handed out or passed over (before the item `next()`
   * answered last, everything; after it, nothing): a resume point that repeats nothing and skips
   * nothing. An account that had no event yet shows where it started.
   */
  positions(): Map<string, string> {
    const positions = new Map<string, string>();
    for (const account of this.order) {
      const state = this.states.get(account);
      if (state !== undefined) positions.set(account, state.passed);
    }
    return positions;
  }

  /** Gives up the accounts and stops reading; a waiting `next()` answers null. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    clearInterval(this.pollTimer);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.wake();
  }

  private async start(): Promise<void> {
    const { log, demand } = this.options;
    // Retained and hooked before the start positions are read, so nothing appended meanwhile is missed.
    for (const account of this.order) {
      this.cleanups.push(
        demand.retain(account, () => {
          if (this.isClosed) return;
          this.gone = account;
          this.close();
        }),
      );
      this.cleanups.push(log.onAppend(account, () => this.markDirty(account)));
    }
    await Promise.all(
      this.order.map(async (account) => {
        const start = this.options.accounts.get(account) ?? (await log.latestId(account));
        this.states.set(account, { passed: start, readFrom: start, buffer: [], lost: undefined, skipTo: undefined });
      }),
    );
    for (const account of this.order) this.dirty.add(account);
    this.pollTimer = setInterval(() => {
      for (const account of this.order) this.markDirty(account);
    }, this.options.pollIntervalMs);
    this.pollTimer.unref();
  }

  /** An item from what has been read, the accounts taking turns; undefined when nothing is buffered. */
  private take(): StreamItem | undefined {
    const count = this.order.length;
    for (let i = 0; i < count; i++) {
      const index = (this.turn + i) % count;
      const account = this.order[index] as string;
      const state = this.states.get(account);
      if (state === undefined) continue;
      if (state.lost === 'pending') {
        state.lost = 'told';
        if (state.skipTo !== undefined) state.passed = state.skipTo;
        state.skipTo = undefined;
        this.turn = index + 1;
        return { kind: 'lost', account };
      }
      let event: MailEvent | undefined;
      while ((event = state.buffer.shift()) !== undefined) {
        state.passed = event.id;
        if (this.options.types !== undefined && !this.options.types.has(event.type)) continue;
        this.turn = index + 1;
        return { kind: 'event', event };
      }
    }
    return undefined;
  }

  /** Reads one page of an account (only called when nothing is buffered). */
  private async read(account: string): Promise<void> {
    this.dirty.delete(account);
    const state = this.states.get(account);
    if (state === undefined) return;
    const pageSize = this.options.pageSize ?? DEFAULT_PAGE_SIZE;
    let result;
    try {
      result = await this.options.log.readAfter(account, state.readFrom, pageSize);
    } catch (err) {
      this.options.onReadError?.(err, account);
      return;
    }
    if (this.isClosed) return;
    // The log reads after `readFrom`, exclusive; a page that overlaps anyway (a backend bug) must not repeat an event.
    const fresh = result.events.filter((event) => isNewer(event.id, state.readFrom));
    if (result.lost && state.lost === undefined) state.lost = 'pending';
    else if (!result.lost && fresh.length > 0 && state.lost === 'told') state.lost = undefined;
    if (result.lost && fresh.length === 0) {
      // Nothing after the gap is kept: continue from the newest id, or each read would find the loss again.
      try {
        const latest = await this.options.log.latestId(account);
        if (this.isClosed) return;
        state.readFrom = latest;
        if (state.lost === 'pending') state.skipTo = latest;
        else state.passed = latest;
      } catch (err) {
        this.options.onReadError?.(err, account);
      }
    }
    const last = fresh.at(-1);
    if (last !== undefined) {
      state.buffer.push(...fresh);
      state.readFrom = last.id;
    }
    // A full page: there is more to read at once.
    if (result.events.length >= pageSize) this.dirty.add(account);
  }

  private markDirty(account: string): void {
    if (this.isClosed) return;
    this.dirty.add(account);
    this.wake();
  }

  private wake(): void {
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }
}

/** Whether `id` comes after `than` (ids either log issues; anything else is let through, not judged). */
function isNewer(id: string, than: string): boolean {
  return !isValidEventId(id) || !isValidEventId(than) || compareEventIds(id, than) > 0;
}
