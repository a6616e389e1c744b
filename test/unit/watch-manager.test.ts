/**
 * The watch manager and a deleted account: the streams retaining it are told (they end), its lease
 * is given up, and it is not started again at every renewal until someone retains it anew. Leases
 * and watchers are fakes here (the real ones: test/integration/events-*.test.ts).
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WatchLeases } from '../../src/coordination/watch-leases.js';
import { GatewayError } from '../../src/errors.js';
import { WatchManager } from '../../src/events/watch-manager.js';
import type { AccountWatch, WatchSink } from '../../src/mail/watch.js';
import { MemoryEventLog } from '../support/memory-event-log.js';

const RENEW_MS = 100;

/** Leases of one process that always wins; records what it holds. */
class FakeLeases implements WatchLeases {
  readonly renewIntervalMs = RENEW_MS;
  readonly ttlMs = 3 * RENEW_MS;
  readonly held = new Set<string>();
  async tryAcquire(accountId: string): Promise<boolean> {
    this.held.add(accountId);
    return true;
  }
  async renew(accountId: string): Promise<boolean> {
    return this.held.has(accountId);
  }
  async release(accountId: string): Promise<void> {
    this.held.delete(accountId);
  }
  async want(): Promise<void> {}
  async wanted(): Promise<boolean> {
    return false;
  }
}

const managers: WatchManager[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

function manager(startWatch: (accountId: string, sink: WatchSink) => Promise<AccountWatch>): { watchers: WatchManager; leases: FakeLeases } {
  vi.useFakeTimers();
  const leases = new FakeLeases();
  const watchers = new WatchManager({
    startWatch: (id, sink) => startWatch(id, sink),
    log: new MemoryEventLog(),
    leases,
    watch: { pollIntervalMs: 1000, reconcileIntervalMs: 60_000, pop3PollIntervalMs: 60_000 },
    logger: pino({ level: 'silent' }),
  });
  managers.push(watchers);
  return { watchers, leases };
}

const stoppable = (): AccountWatch & { stopped: boolean } => {
  const watch = {
    stopped: false,
    async stop() {
      watch.stopped = true;
    },
  };
  return watch;
};

describe('WatchManager and a deleted account', () => {
  it('tells the retainers when the watch cannot start because the account is gone, and does not retry it at each renewal', async () => {
    let starts = 0;
    const { watchers, leases } = manager(async () => {
      starts++;
      throw new GatewayError('ACCOUNT_NOT_FOUND', 'No account gone');
    });
    const onGone = vi.fn();
    const release = watchers.retain('gone', onGone);
    await vi.advanceTimersByTimeAsync(10 * RENEW_MS);
    expect(onGone).toHaveBeenCalledTimes(1);
    expect(starts).toBe(1);
    expect(watchers.watching()).toEqual([]);
    expect(leases.held.size).toBe(0);

    // Asked for anew (the account may have been re-created): tried again, and told again.
    const again = vi.fn();
    watchers.retain('gone', again);
    await vi.advanceTimersByTimeAsync(RENEW_MS);
    expect(starts).toBe(2);
    expect(again).toHaveBeenCalledTimes(1);
    expect(onGone).toHaveBeenCalledTimes(2); // the first retainer had not let go
    release();
  });

  it('still retries a watch that failed for another reason', async () => {
    let starts = 0;
    const { watchers } = manager(async () => {
      starts++;
      throw new GatewayError('UPSTREAM_ERROR', 'down');
    });
    const onGone = vi.fn();
    watchers.retain('flaky', onGone);
    await vi.advanceTimersByTimeAsync(5 * RENEW_MS);
    expect(starts).toBeGreaterThanOrEqual(4);
    expect(onGone).not.toHaveBeenCalled();
  });

  it('gives the watch and its lease up when the watcher finds the account gone, and tells the retainers', async () => {
    const sinks: WatchSink[] = [];
    const watch = stoppable();
    const { watchers, leases } = manager(async (_id, sink) => {
      sinks.push(sink);
      return watch;
    });
    const onGone = vi.fn();
    watchers.retain('deleted-elsewhere', onGone);
    await vi.advanceTimersByTimeAsync(1);
    expect(watchers.watching()).toEqual(['deleted-elsewhere']);
    expect(leases.held.has('deleted-elsewhere')).toBe(true);

    sinks[0]!.gone!();
    await vi.advanceTimersByTimeAsync(10 * RENEW_MS);
    expect(onGone).toHaveBeenCalledTimes(1);
    expect(watchers.watching()).toEqual([]);
    expect(leases.held.size).toBe(0);
    expect(watch.stopped).toBe(true);
    expect(sinks).toHaveLength(1); // not started again
  });

  it('ends what follows an account deleted through this process, and a released retainer is not told', async () => {
    const watch = stoppable();
    const { watchers } = manager(async () => watch);
    const told = vi.fn();
    const left = vi.fn();
    watchers.retain('mine', told);
    const release = watchers.retain('mine', left);
    await vi.advanceTimersByTimeAsync(1);
    release();
    await watchers.forget('mine');
    expect(told).toHaveBeenCalledTimes(1);
    expect(left).not.toHaveBeenCalled();
    expect(watch.stopped).toBe(true);
    expect(watchers.watching()).toEqual([]);
  });
});
