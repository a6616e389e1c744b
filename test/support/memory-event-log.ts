/**
 * An EventLog in memory, for unit tests of its readers (the subscription, the SSE routes): ids
 * `<ms>-<seq>` as both real logs issue them, trimming on demand, and hints that a test can switch
 * off to show that readers do not depend on them. Integration tests use the real logs.
 */
import type { EventLog, EventType, MailboxWatchState, MailEvent, NewEvent, ReadResult } from '../../src/events/types.js';

const ID = /^(\d{1,20})-(\d{1,20})$/;

function order(id: string): [bigint, bigint] {
  const match = ID.exec(id);
  if (match === null) throw new Error(`not an id: ${id}`);
  return [BigInt(match[1] ?? '0'), BigInt(match[2] ?? '0')];
}

function after(a: string, b: string): boolean {
  const [am, as] = order(a);
  const [bm, bs] = order(b);
  return am > bm || (am === bm && as > bs);
}

export class MemoryEventLog implements EventLog {
  private readonly streams = new Map<string, { events: MailEvent[]; last: string; trimmed: string | undefined }>();
  private readonly listeners = new Map<string, Set<() => void>>();
  private ms = 1_700_000_000_000;
  /** False: appends send no hint (a hint lost across a reconnect). */
  hints = true;
  /** Every readAfter call, for tests that count what a reader read. */
  readonly reads: Array<{ accountId: string; afterId: string; limit: number; answered: number }> = [];
  /** When set, readAfter and latestId throw it (the log unreachable). */
  failWith: Error | undefined;

  async append(accountId: string, events: NewEvent[]): Promise<MailEvent[]> {
    const stream = this.stream(accountId);
    const stored = events.map((event) => {
      this.ms += 1;
      const id = `${this.ms}-0`;
      const mailEvent: MailEvent = {
        id,
        type: event.type,
        account: accountId,
        mailbox: event.mailbox,
        at: event.at ?? new Date(this.ms).toISOString(),
        ...(event.fields ?? {}),
      };
      stream.events.push(mailEvent);
      stream.last = id;
      return mailEvent;
    });
    if (this.hints && stored.length > 0) for (const listener of this.listeners.get(accountId) ?? []) listener();
    return stored;
  }

  /** Shorthand: appends `count` events of one type. */
  async add(accountId: string, count = 1, type: EventType = 'message.new', fields: Record<string, unknown> = {}): Promise<MailEvent[]> {
    return this.append(
      accountId,
      Array.from({ length: count }, () => ({ type, mailbox: 'INBOX', fields })),
    );
  }

  /** Drops the oldest events of an account, keeping `keep` (what retention does). */
  trim(accountId: string, keep: number): void {
    const stream = this.stream(accountId);
    const dropped = stream.events.splice(0, Math.max(0, stream.events.length - keep));
    const newest = dropped.at(-1);
    if (newest !== undefined) stream.trimmed = newest.id;
  }

  async readAfter(accountId: string, afterId: string, limit: number): Promise<ReadResult> {
    if (this.failWith) throw this.failWith;
    const stream = this.stream(accountId);
    const events = stream.events.filter((e) => after(e.id, afterId)).slice(0, limit);
    // Lost: something this reader had not read yet (after afterId) was trimmed.
    const lost = stream.trimmed !== undefined && after(stream.trimmed, afterId);
    this.reads.push({ accountId, afterId, limit, answered: events.length });
    return { events, lost };
  }

  async latestId(accountId: string): Promise<string> {
    if (this.failWith) throw this.failWith;
    return this.stream(accountId).last;
  }

  isValidId(id: string): boolean {
    return ID.test(id);
  }

  onAppend(accountId: string, listener: () => void): () => void {
    const set = this.listeners.get(accountId) ?? new Set();
    this.listeners.set(accountId, set);
    const wrapped = (): void => listener();
    set.add(wrapped);
    return () => set.delete(wrapped);
  }

  /** Listeners registered for an account now (a reader that closed has none left). */
  listenerCount(accountId: string): number {
    return this.listeners.get(accountId)?.size ?? 0;
  }

  async loadStates(): Promise<Map<string, MailboxWatchState>> {
    return new Map();
  }

  async loadMessages(): Promise<Map<string, string[]>> {
    return new Map();
  }

  async dropAccount(accountId: string): Promise<void> {
    this.streams.delete(accountId);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  private stream(accountId: string) {
    let stream = this.streams.get(accountId);
    if (stream === undefined) {
      stream = { events: [], last: '0-0', trimmed: undefined };
      this.streams.set(accountId, stream);
    }
    return stream;
  }
}

/** A WatchDemand that records who retains what, for asserting that streams retain and release. */
export class RecordingDemand {
  private readonly counts = new Map<string, number>();
  readonly log: string[] = [];

  retain(accountId: string): () => void {
    this.counts.set(accountId, (this.counts.get(accountId) ?? 0) + 1);
    this.log.push(`+${accountId}`);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.counts.set(accountId, (this.counts.get(accountId) ?? 1) - 1);
      this.log.push(`-${accountId}`);
    };
  }

  /** How many open retains an account has. */
  held(accountId: string): number {
    return this.counts.get(accountId) ?? 0;
  }

  /** Every account with at least one retain open. */
  heldAccounts(): string[] {
    return [...this.counts].filter(([, n]) => n > 0).map(([id]) => id).sort();
  }
}
