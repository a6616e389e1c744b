/**
 * A WatchSink (src/mail/watch.ts) that keeps what a watcher records in memory, applying state
 * changes as the event log does, and lets a test wait for an event. For tests of the watchers
 * themselves; the event log has its own tests against Redis and DATA_DIR.
 */
import type { MailboxWatchState, NewEvent, WatchStateChange } from '../../src/events/types.js';
import type { WatchSink } from '../../src/mail/watch.js';

/** A sink that keeps what the watcher records, as a log would, and lets a test wait for events. */
export class RecordingSink implements WatchSink {
  events: NewEvent[] = [];
  states = new Map<string, MailboxWatchState>();
  messages = new Map<string, Map<string, string[]>>();
  private waiters: Array<() => void> = [];

  async record(events: NewEvent[], changes: WatchStateChange[]): Promise<void> {
    this.events.push(...events);
    for (const c of changes) {
      if (c.state === null) {
        this.states.delete(c.mailbox);
        this.messages.delete(c.mailbox);
        continue;
      }
      this.states.set(c.mailbox, c.state);
      const m = c.replace ? new Map<string, string[]>() : (this.messages.get(c.mailbox) ?? new Map());
      for (const [k, f] of c.set ?? []) m.set(k, f);
      for (const k of c.remove ?? []) m.delete(k);
      this.messages.set(c.mailbox, m);
    }
    for (const w of this.waiters.splice(0)) w();
  }
  async loadStates() {
    return new Map(this.states);
  }
  async loadMessages(mailbox: string) {
    return new Map(this.messages.get(mailbox) ?? []);
  }
  /** Resolves once the watcher recorded a state for `mailbox` (its first look is done). */
  async waitForState(mailbox: string, ms = 8000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.states.has(mailbox)) {
      if (Date.now() > deadline) throw new Error(`no state recorded for ${mailbox}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Resolves with the first recorded event (from `from` on) matching, or rejects after `ms`. */
  async waitFor(match: (e: NewEvent) => boolean, from = 0, ms = 8000): Promise<NewEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching event; got ${JSON.stringify(this.events.slice(from).map((e) => [e.type, e.mailbox]))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
}

