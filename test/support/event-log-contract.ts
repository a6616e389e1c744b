/**
 * What every EventLog backend must do (src/events/types.ts), as one suite run against each: the file
 * log (test/unit/file-event-log.test.ts) and the Redis log on a single Redis and on a Cluster
 * (test/integration/redis-event-log.test.ts).
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { compareEventIds } from '../../src/events/log/event-id.js';
import type { EventLog, MailboxWatchState, NewEvent, WatchStateChange } from '../../src/events/types.js';
import { rejection } from './assertions.js';

export interface ContractBackend {
  /** A new log instance on the backend's shared storage. */
  make(options?: { retentionMs?: number; now?: () => number }): Promise<EventLog>;
  /**
   * Lets `ms` pass for retention: the Redis log ages events by Redis's own clock (real time), the
   * file log by its injected clock.
   */
  elapse(ms: number): Promise<void>;
}

export const DAY_MS = 86_400_000;

export function newEvent(type: NewEvent['type'], mailbox: string | null, fields: Record<string, unknown> = {}): NewEvent {
  return { type, mailbox, fields };
}

export function state(uidNext: number, messages: number, uidValidity = '7'): MailboxWatchState {
  return { uidValidity, uidNext, highestModseq: null, messages };
}

export function eventLogContract(backend: ContractBackend): void {
  const logs: EventLog[] = [];
  const make = async (options?: { retentionMs?: number; now?: () => number }): Promise<EventLog> => {
    const log = await backend.make(options);
    logs.push(log);
    return log;
  };
  const account = (): string => `acct-${randomUUID()}`;
  afterEach(async () => {
    await Promise.all(logs.splice(0).map((log) => log.close()));
  });

  describe('an account without events', () => {
    it('answers 0-0 as its latest id, nothing after it, not lost, and no state', async () => {
      const log = await make();
      const acct = account();
      expect(await log.latestId(acct)).toBe('0-0');
      expect(await log.readAfter(acct, '0-0', 10)).toEqual({ events: [], lost: false });
      expect(await log.loadStates(acct)).toEqual(new Map());
      expect(await log.loadMessages(acct, 'INBOX')).toEqual(new Map());
    });
  });

  describe('append and readAfter', () => {
    it('stores events in order with increasing ids, and reads back exactly what append answered', async () => {
      const log = await make();
      const acct = account();
      const first = await log.append(acct, [
        newEvent('message.new', 'INBOX', { message: { id: 'm1', subject: 'Hi', flags: ['\\Seen'] } }),
        newEvent('message.deleted', 'INBOX', { messageId: 'm0' }),
      ]);
      const second = await log.append(acct, [newEvent('account.error', null, { code: 'UPSTREAM_ERROR', detail: 'refused' })]);
      const all = [...first, ...second];
      expect(all.map((e) => e.type)).toEqual(['message.new', 'message.deleted', 'account.error']);
      for (let i = 1; i < all.length; i++) expect(compareEventIds(all[i - 1]!.id, all[i]!.id)).toBeLessThan(0);
      expect(all[0]).toMatchObject({ account: acct, mailbox: 'INBOX', message: { id: 'm1', subject: 'Hi', flags: ['\\Seen'] } });
      expect(all[2]).toMatchObject({ account: acct, mailbox: null, code: 'UPSTREAM_ERROR', detail: 'refused' });
      for (const event of all) expect(log.isValidId(event.id)).toBe(true);

      expect(await log.readAfter(acct, '0-0', 100)).toEqual({ events: all, lost: false });
      expect(await log.readAfter(acct, all[0]!.id, 100)).toEqual({ events: all.slice(1), lost: false });
      expect(await log.latestId(acct)).toBe(all[2]!.id);
      expect(await log.readAfter(acct, all[2]!.id, 100)).toEqual({ events: [], lost: false });
    });

    it("stamps `at` with the log's clock unless the event carries one, and keeps its own members its own", async () => {
      const log = await make({ now: () => Date.parse('2030-01-02T03:04:05.678Z') });
      const acct = account();
      const [stamped, given] = await log.append(acct, [
        { type: 'message.new', mailbox: 'INBOX', seenAtMs: 12.5, fields: { id: 'forged', account: 'other', type: 'message.deleted', extra: 1 } },
        { type: 'message.new', mailbox: 'INBOX', at: '2029-12-31T23:59:59.000Z' },
      ]);
      expect(stamped).toEqual({ id: stamped!.id, type: 'message.new', account: acct, mailbox: 'INBOX', at: '2030-01-02T03:04:05.678Z', extra: 1 });
      expect(given!.at).toBe('2029-12-31T23:59:59.000Z');
      expect((await log.readAfter(acct, '0-0', 10)).events).toEqual([stamped, given]);
    });

    it('pages with limit: every event once, in order', async () => {
      const log = await make();
      const acct = account();
      const appended = [];
      for (let batch = 0; batch < 5; batch++) {
        appended.push(...(await log.append(acct, Array.from({ length: 5 }, (_, i) => newEvent('message.new', 'INBOX', { n: batch * 5 + i })))));
      }
      const read = [];
      let after = '0-0';
      for (;;) {
        const page = await log.readAfter(acct, after, 7);
        expect(page.lost).toBe(false);
        expect(page.events.length).toBeLessThanOrEqual(7);
        if (page.events.length === 0) break;
        read.push(...page.events);
        after = page.events.at(-1)!.id;
      }
      expect(read).toEqual(appended);
      expect(read.map((e) => e.n)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    });

    it('answers nothing, not lost, after an id newer than any it issued', async () => {
      const log = await make();
      const acct = account();
      await log.append(acct, [newEvent('message.new', 'INBOX')]);
      expect(await log.readAfter(acct, '999999999999999-0', 10)).toEqual({ events: [], lost: false });
    });

    it('keeps accounts apart', async () => {
      const log = await make();
      const a = account();
      const b = account();
      await log.append(a, [newEvent('message.new', 'INBOX', { who: 'a' })]);
      await log.append(b, [newEvent('message.new', 'INBOX', { who: 'b' })]);
      expect((await log.readAfter(a, '0-0', 10)).events.map((e) => e.who)).toEqual(['a']);
      expect((await log.readAfter(b, '0-0', 10)).events.map((e) => e.who)).toEqual(['b']);
    });

    it('keeps the order of concurrent appends to one account as their ids say', async () => {
      const log = await make();
      const acct = account();
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => log.append(acct, [newEvent('message.new', 'INBOX', { n: i })])));
      const read = (await log.readAfter(acct, '0-0', 100)).events;
      expect(read).toHaveLength(10);
      const byId = results.flat().sort((x, y) => compareEventIds(x.id, y.id));
      expect(read).toEqual(byId);
    });
  });

  describe('ids', () => {
    it('accepts what the log issues and 0-0, and refuses anything else (a resume point it cannot have issued)', async () => {
      const log = await make();
      for (const id of ['0-0', '1-0', '1700000000000-0', '1700000000000-42', '999999999999999-999999999999999']) {
        expect(log.isValidId(id), id).toBe(true);
      }
      for (const id of ['', '0', '1700000000000', '-1-0', '01-0', '1-01', '1-0 ', ' 1-0', '1-0-0', 'a-b', '1.5-0', '1000000000000000-0', '1-1e3', '$', '+']) {
        expect(log.isValidId(id), id).toBe(false);
      }
      const err = await rejection(log.readAfter(account(), '12-ab', 10));
      expect(err.code).toBe('VALIDATION_FAILED');
    });
  });

  describe('watch state', () => {
    it('sets, replaces, removes and drops mailbox states and their messages', async () => {
      const log = await make();
      const acct = account();
      await log.append(acct, [], [
        { mailbox: 'INBOX', state: state(4, 3), replace: true, set: [['1', ['\\Seen']], ['2', []], ['3', ['\\Flagged', '\\Seen']]] },
        { mailbox: 'Work/2024', state: state(2, 1), replace: true, set: [['1', []]] },
      ]);
      expect(await log.loadStates(acct)).toEqual(new Map([['INBOX', state(4, 3)], ['Work/2024', state(2, 1)]]));
      expect(await log.loadMessages(acct, 'INBOX')).toEqual(new Map([['1', ['\\Seen']], ['2', []], ['3', ['\\Flagged', '\\Seen']]]));

      // set changes or adds, remove drops; the others stay as they were.
      await log.append(acct, [], [{ mailbox: 'INBOX', state: state(5, 3), set: [['2', ['\\Seen']], ['4', []]], remove: ['1'] }]);
      expect(await log.loadMessages(acct, 'INBOX')).toEqual(new Map([['2', ['\\Seen']], ['3', ['\\Flagged', '\\Seen']], ['4', []]]));

      // replace starts the mailbox's messages afresh (UIDVALIDITY changed).
      await log.append(acct, [], [{ mailbox: 'INBOX', state: state(2, 1, '8'), replace: true, set: [['1', []]] }]);
      expect(await log.loadMessages(acct, 'INBOX')).toEqual(new Map([['1', []]]));
      expect((await log.loadStates(acct)).get('INBOX')).toEqual(state(2, 1, '8'));

      // A mailbox gone takes its messages along; a mailbox whose messages were all removed stays known, empty.
      await log.append(acct, [], [
        { mailbox: 'Work/2024', state: null },
        { mailbox: 'INBOX', state: state(2, 0, '8'), remove: ['1'] },
      ]);
      expect(await log.loadStates(acct)).toEqual(new Map([['INBOX', state(2, 0, '8')]]));
      expect(await log.loadMessages(acct, 'Work/2024')).toEqual(new Map());
      expect(await log.loadMessages(acct, 'INBOX')).toEqual(new Map());
    });

    it('applies two changes of one mailbox in one append in their order', async () => {
      const log = await make();
      const acct = account();
      await log.append(acct, [], [
        { mailbox: 'INBOX', state: state(3, 2), replace: true, set: [['1', []], ['2', []]] },
        { mailbox: 'INBOX', state: state(3, 1), remove: ['1'] },
      ]);
      expect(await log.loadMessages(acct, 'INBOX')).toEqual(new Map([['2', []]]));
      expect((await log.loadStates(acct)).get('INBOX')).toEqual(state(3, 1));
    });

    it('keeps mailbox paths and message keys of any characters apart', async () => {
      const log = await make();
      const acct = account();
      const odd = ['a:b', 'a*', 'Entwürfe', '__proto__', 'x/y', 'x%2Fy'];
      await log.append(acct, [], odd.map((mailbox, i) => ({ mailbox, state: state(i + 2, 1), replace: true, set: [[`k:${mailbox}`, [mailbox]]] })));
      const states = await log.loadStates(acct);
      expect([...states.keys()].sort()).toEqual([...odd].sort());
      for (const [i, mailbox] of odd.entries()) {
        expect(states.get(mailbox)).toEqual(state(i + 2, 1));
        expect(await log.loadMessages(acct, mailbox)).toEqual(new Map([[`k:${mailbox}`, [mailbox]]]));
      }
    });

    it('makes the state visible exactly when the events it explains are', async () => {
      const log = await make();
      const acct = account();
      const count = 30;
      const writer = (async () => {
        for (let i = 1; i <= count; i++) {
          await log.append(acct, [newEvent('message.new', 'INBOX', { uid: i })], [{ mailbox: 'INBOX', state: state(i + 1, i), set: [[String(i), []]] }]);
        }
      })();
      let done = false;
      void writer.finally(() => (done = true));
      const uidNextSeen = async (): Promise<number> => ((await log.loadStates(acct)).get('INBOX')?.uidNext ?? 1) - 1;
      const eventsSeen = async (): Promise<number> => (await log.readAfter(acct, '0-0', 1000)).events.length;
      while (!done) {
        // Events read first: their state cannot be older. State read first: its events cannot be missing.
        const events = await eventsSeen();
        expect(await uidNextSeen()).toBeGreaterThanOrEqual(events);
        const changes = await uidNextSeen();
        expect(await eventsSeen()).toBeGreaterThanOrEqual(changes);
      }
      await writer;
      expect(await eventsSeen()).toBe(count);
      expect((await log.loadMessages(acct, 'INBOX')).size).toBe(count);
    });

    it('refuses a malformed change and then stores nothing of that append', async () => {
      const log = await make();
      const acct = account();
      const bad: WatchStateChange = { mailbox: 'INBOX', state: state(2, 1), set: [['', []]] };
      await expect(log.append(acct, [newEvent('message.new', 'INBOX')], [bad])).rejects.toThrow();
      expect(await log.readAfter(acct, '0-0', 10)).toEqual({ events: [], lost: false });
      expect(await log.loadStates(acct)).toEqual(new Map());
    });
  });

  describe('retention', () => {
    it('tells a resume point older than what is kept that it lost events, and one that is not that it did not', async () => {
      const retentionMs = 200;
      const log = await make({ retentionMs });
      const acct = account();
      const fresh = account();
      const [a, b] = await log.append(acct, [newEvent('message.new', 'INBOX', { n: 1 }), newEvent('message.new', 'INBOX', { n: 2 })]);
      await backend.elapse(retentionMs * 3);
      const [c] = await log.append(acct, [newEvent('message.new', 'INBOX', { n: 3 })]);

      expect(await log.readAfter(acct, a!.id, 10)).toEqual({ events: [c], lost: true });
      expect(await log.readAfter(acct, '0-0', 10)).toEqual({ events: [c], lost: true });
      // The reader had seen b, the newest event removed: nothing is missing.
      expect(await log.readAfter(acct, b!.id, 10)).toEqual({ events: [c], lost: false });
      expect(await log.readAfter(acct, c!.id, 10)).toEqual({ events: [], lost: false });
      expect(await log.latestId(acct)).toBe(c!.id);
      // Another account, never written: 0-0 is not a lost position.
      expect(await log.readAfter(fresh, '0-0', 10)).toEqual({ events: [], lost: false });
    });

    it('starts a reader from "now" without telling it lost, however much was trimmed before', async () => {
      const retentionMs = 200;
      const log = await make({ retentionMs });
      const acct = account();
      await log.append(acct, [newEvent('message.new', 'INBOX')]);
      await backend.elapse(retentionMs * 3);
      await log.append(acct, [newEvent('message.new', 'INBOX')]);
      const now = await log.latestId(acct);
      expect(await log.readAfter(acct, now, 10)).toEqual({ events: [], lost: false });
      const [next] = await log.append(acct, [newEvent('message.deleted', 'INBOX')]);
      expect(await log.readAfter(acct, now, 10)).toEqual({ events: [next], lost: false });
    });

    it('keeps the watch state however old the events that brought it are', async () => {
      const retentionMs = 200;
      const log = await make({ retentionMs });
      const acct = account();
      await log.append(acct, [newEvent('message.new', 'INBOX')], [{ mailbox: 'INBOX', state: state(2, 1), replace: true, set: [['1', ['\\Seen']]] }]);
      await backend.elapse(retentionMs * 3);
      await log.append(acct, [newEvent('message.new', 'Archive')]);
      await backend.elapse(retentionMs * 3);
      await log.append(acct, [newEvent('message.new', 'Archive')]);
      expect(await log.loadStates(acct)).toEqual(new Map([['INBOX', state(2, 1)]]));
      expect(await log.loadMessages(acct, 'INBOX')).toEqual(new Map([['1', ['\\Seen']]]));
    });
  });

  describe('onAppend', () => {
    it('calls the listener after an append to its account, not for others, and no more once removed', async () => {
      const log = await make();
      const acct = account();
      let calls = 0;
      let otherCalls = 0;
      const stop = log.onAppend(acct, () => calls++);
      log.onAppend(account(), () => otherCalls++);
      await log.append(acct, [newEvent('message.new', 'INBOX')]);
      await expect.poll(() => calls).toBeGreaterThanOrEqual(1);
      const before = calls;
      await Promise.all(Array.from({ length: 5 }, () => log.append(acct, [newEvent('message.new', 'INBOX')])));
      await expect.poll(() => calls).toBeGreaterThan(before);
      stop();
      stop(); // idempotent
      const stopped = calls;
      await log.append(acct, [newEvent('message.new', 'INBOX')]);
      expect((await log.readAfter(acct, '0-0', 100)).events).toHaveLength(7);
      await new Promise((resolve) => setImmediate(resolve));
      expect(calls).toBe(stopped);
      expect(otherCalls).toBe(0);
    });

    it('hints nobody for an append of state changes only (there is nothing new to read)', async () => {
      const log = await make();
      const acct = account();
      let calls = 0;
      log.onAppend(acct, () => calls++);
      await log.append(acct, [], [{ mailbox: 'INBOX', state: state(2, 1) }]);
      expect(await log.readAfter(acct, '0-0', 10)).toEqual({ events: [], lost: false });
      await new Promise((resolve) => setImmediate(resolve));
      expect(calls).toBe(0);
    });
  });

  describe('dropAccount', () => {
    it("removes the account's events and states and nothing of other accounts", async () => {
      const log = await make();
      const gone = account();
      const kept = account();
      for (const acct of [gone, kept]) {
        await log.append(acct, [newEvent('message.new', 'INBOX')], [{ mailbox: 'INBOX', state: state(2, 1), replace: true, set: [['1', []]] }]);
      }
      await log.dropAccount(gone);
      expect(await log.readAfter(gone, '0-0', 10)).toEqual({ events: [], lost: false });
      expect(await log.latestId(gone)).toBe('0-0');
      expect(await log.loadStates(gone)).toEqual(new Map());
      expect(await log.loadMessages(gone, 'INBOX')).toEqual(new Map());
      expect((await log.readAfter(kept, '0-0', 10)).events).toHaveLength(1);
      expect((await log.loadStates(kept)).size).toBe(1);
      // The account can be written again from scratch.
      const [again] = await log.append(gone, [newEvent('message.new', 'INBOX')]);
      expect((await log.readAfter(gone, '0-0', 10)).events).toEqual([again]);
    });
  });
}
