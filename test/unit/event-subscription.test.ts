/**
 * The subscription over an event log: order, resume positions, type filter, lost events, hints and
 * the backstop poll, retained demand, and reading only as fast as its reader takes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Subscription, type StreamItem, type SubscriptionOptions } from '../../src/events/subscription.js';
import { MemoryEventLog, RecordingDemand } from '../support/memory-event-log.js';

const open: Subscription[] = [];
afterEach(() => {
  for (const subscription of open.splice(0)) subscription.close();
});

async function subscribe(options: Partial<SubscriptionOptions> & Pick<SubscriptionOptions, 'log' | 'accounts'>): Promise<Subscription> {
  const subscription = await Subscription.open({ demand: new RecordingDemand(), pollIntervalMs: 60_000, ...options });
  open.push(subscription);
  return subscription;
}

/**
 * A next() that a helper stopped waiting for is still pending and will take the next item: keep it,
 * so that the following helper call waits on it rather than asking twice.
 */
const pending = new WeakMap<Subscription, Promise<StreamItem | null>>();
function nextOf(subscription: Subscription): Promise<StreamItem | null> {
  let promise = pending.get(subscription);
  if (promise === undefined) {
    promise = subscription.next().finally(() => pending.delete(subscription));
    pending.set(subscription, promise);
  }
  return promise;
}

/** The next `count` items, failing if they do not come within `timeoutMs`. */
async function take(subscription: Subscription, count: number, timeoutMs = 2_000): Promise<StreamItem[]> {
  const items: StreamItem[] = [];
  const deadline = Date.now() + timeoutMs;
  while (items.length < count) {
    const item = await Promise.race([nextOf(subscription), sleep(deadline - Date.now()).then(() => 'timeout' as const)]);
    if (item === 'timeout') throw new Error(`only ${items.length} of ${count} items within ${timeoutMs} ms`);
    if (item === null) break;
    items.push(item);
  }
  return items;
}

/** Whether the subscription hands out anything within `ms` (it must not). */
async function nothingWithin(subscription: Subscription, ms: number): Promise<boolean> {
  const item = await Promise.race([nextOf(subscription), sleep(ms).then(() => 'nothing' as const)]);
  return item === 'nothing';
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));
const ids = (items: StreamItem[]) => items.map((item) => (item.kind === 'event' ? item.event.id : `lost:${item.account}`));

describe('Subscription', () => {
  it('starts now when given no resume point, and hands out what is appended after, in order', async () => {
    const log = new MemoryEventLog();
    await log.add('alice', 3);
    const subscription = await subscribe({ log, accounts: new Map([['alice', undefined]]) });
    expect(subscription.positions()).toEqual(new Map([['alice', await log.latestId('alice')]]));
    const appended = await log.add('alice', 5);
    const items = await take(subscription, 5);
    expect(ids(items)).toEqual(appended.map((e) => e.id));
    expect(subscription.positions().get('alice')).toBe(appended.at(-1)?.id);
  });

  it('resumes after an id: exactly the events after it, read page by page', async () => {
    const log = new MemoryEventLog();
    const before = await log.add('alice', 250);
    const from = before[99]?.id;
    const subscription = await subscribe({ log, accounts: new Map([['alice', from]]), pageSize: 40 });
    const items = await take(subscription, 150);
    expect(ids(items)).toEqual(before.slice(100).map((e) => e.id));
    expect(log.reads.every((r) => r.limit === 40)).toBe(true);
  });

  it('interleaves several accounts, each in its own order, and its positions name every account', async () => {
    const log = new MemoryEventLog();
    const startBob = await log.latestId('bob');
    const subscription = await subscribe({ log, accounts: new Map([['alice', undefined], ['bob', startBob], ['carol', undefined]]), pageSize: 10 });
    const alice = await log.add('alice', 30);
    const bob = await log.add('bob', 30);
    const items = await take(subscription, 60);
    const of = (account: string) => items.filter((i) => i.kind === 'event' && i.event.account === account).map((i) => (i.kind === 'event' ? i.event.id : ''));
    expect(of('alice')).toEqual(alice.map((e) => e.id));
    expect(of('bob')).toEqual(bob.map((e) => e.id));
    // Busy accounts take turns page by page: bob's first page comes before alice's second.
    expect(items.slice(10, 20).every((i) => i.kind === 'event' && i.event.account === 'bob')).toBe(true);
    expect([...subscription.positions().keys()].sort()).toEqual(['alice', 'bob', 'carol']);
    expect(subscription.positions().get('carol')).toBe('0-0');
  });

  it('positions are those of what was handed out, not of what was read ahead', async () => {
    const log = new MemoryEventLog();
    const subscription = await subscribe({ log, accounts: new Map([['alice', '0-0']]) });
    const events = await log.add('alice', 10);
    const [first] = await take(subscription, 1);
    expect(first?.kind === 'event' && first.event.id).toBe(events[0]?.id);
    // The whole page was read, but a resume from here must still get events 2..10.
    expect(subscription.positions().get('alice')).toBe(events[0]?.id);
  });

  it('hands out only the types asked for, and passes over the others in its positions', async () => {
    const log = new MemoryEventLog();
    const subscription = await subscribe({ log, accounts: new Map([['alice', undefined]]), types: new Set(['message.deleted'] as const) });
    await log.add('alice', 3, 'message.new');
    const [deleted] = await log.add('alice', 1, 'message.deleted');
    const skipped = await log.add('alice', 2, 'message.updated');
    const items = await take(subscription, 1);
    expect(ids(items)).toEqual([deleted?.id]);
    expect(await nothingWithin(subscription, 50)).toBe(true);
    // What was passed over counts as passed: a resume from here does not read it again.
    expect(subscription.positions().get('alice')).toBe(skipped.at(-1)?.id);
  });

  it('tells events.lost once for a resume point older than what is kept, then continues with the oldest kept', async () => {
    const log = new MemoryEventLog();
    const events = await log.add('alice', 20);
    log.trim('alice', 5);
    const subscription = await subscribe({ log, accounts: new Map([['alice', events[2]?.id]]) });
    const items = await take(subscription, 6);
    expect(ids(items)).toEqual(['lost:alice', ...events.slice(15).map((e) => e.id)]);
    expect(await nothingWithin(subscription, 50)).toBe(true);
  });

  it('tells events.lost once and starts from the newest id when nothing after the resume point is kept', async () => {
    const log = new MemoryEventLog();
    const events = await log.add('alice', 5);
    log.trim('alice', 0);
    const subscription = await subscribe({ log, accounts: new Map([['alice', events[0]?.id]]), pollIntervalMs: 20 });
    expect(ids(await take(subscription, 1))).toEqual(['lost:alice']);
    expect(subscription.positions().get('alice')).toBe(events[4]?.id);
    // Polls read again and again: the loss is not told a second time.
    expect(await nothingWithin(subscription, 100)).toBe(true);
    const later = await log.add('alice', 1);
    expect(ids(await take(subscription, 1))).toEqual([later[0]?.id]);
  });

  it('does not depend on hints: the backstop poll reads what a lost hint did not announce', async () => {
    const log = new MemoryEventLog();
    const subscription = await subscribe({ log, accounts: new Map([['alice', undefined]]), pollIntervalMs: 50 });
    log.hints = false;
    const [event] = await log.add('alice', 1);
    const started = Date.now();
    expect(ids(await take(subscription, 1))).toEqual([event?.id]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('retains each account while open and gives them up on close; a waiting next() answers null', async () => {
    const log = new MemoryEventLog();
    const demand = new RecordingDemand();
    const subscription = await subscribe({ log, demand, accounts: new Map([['alice', undefined], ['bob', undefined]]) });
    expect(demand.heldAccounts()).toEqual(['alice', 'bob']);
    expect(log.listenerCount('alice')).toBe(1);
    const waiting = nextOf(subscription);
    subscription.close();
    subscription.close();
    expect(await waiting).toBeNull();
    expect(demand.heldAccounts()).toEqual([]);
    expect(log.listenerCount('alice')).toBe(0);
    expect(await subscription.next()).toBeNull();
  });

  it('gives everything up when the log cannot be read at open, and throws', async () => {
    const log = new MemoryEventLog();
    log.failWith = new Error('redis down');
    const demand = new RecordingDemand();
    await expect(Subscription.open({ log, demand, accounts: new Map([['alice', undefined]]), pollIntervalMs: 1_000 })).rejects.toThrow('redis down');
    expect(demand.heldAccounts()).toEqual([]);
    expect(log.listenerCount('alice')).toBe(0);
  });

  it('survives failing reads: reported, retried at the next poll, nothing skipped', async () => {
    const log = new MemoryEventLog();
    const failures: string[] = [];
    const subscription = await subscribe({
      log,
      accounts: new Map([['alice', undefined]]),
      pollIntervalMs: 30,
      onReadError: (_err, account) => failures.push(account),
    });
    log.failWith = new Error('redis down');
    const events = await log.add('alice', 3);
    expect(await nothingWithin(subscription, 100)).toBe(true);
    expect(failures.length).toBeGreaterThan(0);
    log.failWith = undefined;
    expect(ids(await take(subscription, 3))).toEqual(events.map((e) => e.id));
  });

  it('reads no further ahead than one page while its reader does not ask', async () => {
    const log = new MemoryEventLog();
    const subscription = await subscribe({ log, accounts: new Map([['alice', '0-0']]), pageSize: 10, pollIntervalMs: 20 });
    await log.add('alice', 500);
    await take(subscription, 1);
    await sleep(100); // hints and polls come, but nobody asks
    const read = log.reads.reduce((sum, r) => sum + r.answered, 0);
    expect(read).toBe(10);
    expect((await take(subscription, 499)).length).toBe(499);
  });

  it('allows one next() at a time', async () => {
    const log = new MemoryEventLog();
    const subscription = await subscribe({ log, accounts: new Map([['alice', undefined]]) });
    const first = nextOf(subscription);
    await expect(subscription.next()).rejects.toThrow(/already waiting/);
    subscription.close();
    expect(await first).toBeNull();
  });
});
