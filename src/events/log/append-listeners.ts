/**
 * This process's `onAppend` listeners, by account, with hints coalesced: however many hints for one
 * account arrive within one turn of the event loop (a burst of appends, the local call and the Redis
 * echo of the same append), each listener runs once, on the next turn (setImmediate). A listener only
 * learns "read the log again"; what there is to read, it reads.
 */
export class AppendListeners {
  private readonly listeners = new Map<string, Set<() => void>>();
  /** Accounts hinted during this turn, whose listeners run on the next. */
  private readonly pending = new Set<string>();
  private scheduled: NodeJS.Immediate | undefined;

  /** Adds a listener; the returned function removes it (idempotent). */
  add(accountId: string, listener: () => void): () => void {
    // A wrapper per registration, so the same function registered twice is removed once per call.
    const entry = (): void => listener();
    let set = this.listeners.get(accountId);
    if (set === undefined) this.listeners.set(accountId, (set = new Set()));
    set.add(entry);
    return () => {
      const current = this.listeners.get(accountId);
      if (current === undefined || !current.delete(entry)) return;
      if (current.size === 0) this.listeners.delete(accountId);
    };
  }

  /** Whether anyone here listens to this account (the Redis subscriber ignores the others). */
  has(accountId: string): boolean {
    return this.listeners.has(accountId);
  }

  /** Whether anyone here listens at all. */
  get size(): number {
    return this.listeners.size;
  }

  /** Schedules the account's listeners for the next turn, once however often it is called meanwhile. */
  hint(accountId: string): void {
    if (!this.listeners.has(accountId)) return;
    this.pending.add(accountId);
    this.scheduled ??= setImmediate(() => this.flush());
  }

  /** Schedules every listener for the next turn (hints may have been lost meanwhile). */
  hintAll(): void {
    for (const accountId of this.listeners.keys()) this.hint(accountId);
  }

  /** Drops every listener and any scheduled call. */
  clear(): void {
    this.listeners.clear();
    this.pending.clear();
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
  }

  private flush(): void {
    this.scheduled = undefined;
    const accounts = [...this.pending];
    this.pending.clear();
    for (const accountId of accounts) {
      for (const listener of [...(this.listeners.get(accountId) ?? [])]) {
        try {
          listener();
        } catch {
          // A listener's own failure is its business; the others still hear of the append.
        }
      }
    }
  }
}
