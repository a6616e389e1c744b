/**
 * Session slots: how many connections to one account's mail server all gateway processes together
 * may hold (ARCHITECTURE.md, Pool: "counted across all gateway replicas through Redis").
 *
 * Each open session holds one slot. In Redis a slot is a member of a sorted set per account and
 * protocol, scored with its expiry time (Redis server time, so replicas' clocks do not matter).
 * Holders renew their slots every third of the TTL, every account at once; a process that crashes
 * stops renewing and its slots expire, so the others can use them again. Without Redis the pool's
 * own count is the cap.
 *
 * A process refused a slot raises the account's "wanted" flag and says so on a channel
 * (`keys.sessionSlotsWantedChannel()`), so a holder frees an idle session at once rather than at its
 * next renewal; the renewal still reads the flag, for a message lost while a subscriber reconnected.
 * A thousand watched accounts thus cost one pass of renewals per third of the TTL, not one per second.
 *
 * A Redis outage must not stop mail: when Redis cannot be asked, a slot is granted (the per-process
 * cap still holds) and the outage is logged once.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { keys } from '../cache/keys.js';
import { RedisChannel } from '../cache/redis-channel.js';
import type { RedisClient } from '../cache/redis-connection.js';

export interface Slot {
  release(): void;
}

export interface SessionSlots {
  /** A slot, or null when every slot of this account is held (by any process). */
  acquire(accountId: string, protocol: 'imap' | 'pop3', max: number): Promise<Slot | null>;
  /**
   * Calls `onWanted` when another process waits for a slot of this account, so that a process
   * holding idle sessions closes one (idle sessions would otherwise keep the slots until their TTL).
   * Returns the function that stops watching.
   */
  watch(accountId: string, protocol: 'imap' | 'pop3', onWanted: () => void): () => void;
  close(): Promise<void>;
}

const FREE_SLOT: Slot = { release: () => undefined };

/** One process: the pool's own count is the cap, so every request for a slot is granted. */
export class LocalSessionSlots implements SessionSlots {
  async acquire(): Promise<Slot> {
    return FREE_SLOT;
  }
  watch(): () => void {
    return () => undefined;
  }
  async close(): Promise<void> {}
}

// KEYS[1] slot set, KEYS[2] "wanted" flag; ARGV: member, ttlMs, max, wantedMs. Drops expired
// members, then adds if under the cap; else raises the flag that asks holders to free an idle one.
const ACQUIRE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[4]))
return 0`;

// KEYS[1] slot set, KEYS[2] "wanted" flag; ARGV: ttlMs, members... Pushes the expiry of the
// members still held; answers whether another process is waiting for a slot.
const RENEW_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return redis.call('EXISTS', KEYS[2])`;

export class RedisSessionSlots implements SessionSlots {
  /** Slot members this process holds, by slot-set key, with the key of that set's "wanted" flag. */
  private readonly held = new Map<string, { wantedKey: string; members: Set<string> }>();
  /** Who to tell, by slot-set key, when another process waits for a slot. */
  private readonly watchers = new Map<string, Set<() => void>>();
  private readonly timer: NodeJS.Timeout;
  private readonly renewIntervalMs: number;
  private readonly wantedChannel: RedisChannel;
  private degraded = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly log: Logger,
    private readonly ttlMs = 30_000,
  ) {
    this.renewIntervalMs = Math.max(10, Math.floor(ttlMs / 3));
    this.timer = setInterval(() => void this.renew(), this.renewIntervalMs);
    this.timer.unref();
    this.wantedChannel = new RedisChannel(redis, keys.sessionSlotsWantedChannel(), (key) => this.tellWanted(key));
    void this.wantedChannel.start();
  }

  async acquire(accountId: string, protocol: 'imap' | 'pop3', max: number): Promise<Slot | null> {
    const key = keys.sessionSlots(accountId, protocol);
    const wantedKey = keys.sessionSlotsWanted(accountId, protocol);
    const member = randomUUID();
    let granted: unknown;
    try {
      // The flag outlives one renewal pass, so a holder whose channel message was lost still sees it.
      granted = await this.redis.eval(ACQUIRE_SCRIPT, 2, key, wantedKey, member, String(this.ttlMs), String(max), String(Math.ceil(this.renewIntervalMs * 1.5)));
      this.noteHealthy();
    } catch (err) {
      this.noteOutage(err);
      return FREE_SLOT;
    }
    if (Number(granted) !== 1) {
      this.redis.publish(keys.sessionSlotsWantedChannel(), key).catch((err: unknown) => this.noteOutage(err));
      return null;
    }
    let holding = this.held.get(key);
    if (holding === undefined) this.held.set(key, (holding = { wantedKey, members: new Set() }));
    const members = holding.members;
    members.add(member);
    return {
      release: () => {
        if (!members.delete(member)) return;
        if (members.size === 0) this.held.delete(key);
        this.redis.zrem(key, member).catch((err: unknown) => this.noteOutage(err));
      },
    };
  }

  watch(accountId: string, protocol: 'imap' | 'pop3', onWanted: () => void): () => void {
    const key = keys.sessionSlots(accountId, protocol);
    let set = this.watchers.get(key);
    if (set === undefined) this.watchers.set(key, (set = new Set()));
    set.add(onWanted);
    return () => {
      set.delete(onWanted);
      if (set.size === 0) this.watchers.delete(key);
    };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.wantedChannel.close();
    const pending = [...this.held].map(([key, { members }]) => this.redis.zrem(key, ...members).catch(() => 0));
    this.held.clear();
    await Promise.all(pending);
  }

  /** Every held slot's expiry pushed on, all accounts' scripts sent without waiting for each other: one round trip's wait for all. */
  private async renew(): Promise<void> {
    await Promise.all(
      [...this.held].map(async ([key, { wantedKey, members }]) => {
        if (members.size === 0) return;
        try {
          const wanted = await this.redis.eval(RENEW_SCRIPT, 2, key, wantedKey, String(this.ttlMs), ...members);
          this.noteHealthy();
          if (Number(wanted) === 1) this.tellWanted(key);
        } catch (err) {
          this.noteOutage(err);
        }
      }),
    );
  }

  /** Another process waits for a slot of the set `key`: whoever here watches it frees an idle session. */
  private tellWanted(key: string): void {
    for (const onWanted of this.watchers.get(key) ?? []) onWanted();
  }

  private noteOutage(err: unknown): void {
    if (this.degraded) return;
    this.degraded = true;
    this.log.warn({ err: { message: (err as Error).message } }, 'redis unreachable: session caps hold per process only');
  }

  private noteHealthy(): void {
    if (!this.degraded) return;
    this.degraded = false;
    this.log.warn('redis reachable again: session caps hold across processes');
  }
}
