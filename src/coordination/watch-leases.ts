/**
 * Which process watches an account (API.md, Events: "each account is watched by exactly one of
 * them at a time, and another takes over within SESSION_SLOT_TTL_MS when that one dies").
 *
 * In Redis the owner of an account's watch holds a key set with NX and a TTL, renewed every third
 * of the TTL while anyone wants the account watched; a process that dies stops renewing, and the
 * key expires. Demand is shared the same way: a process with a stream (or webhook) covering an
 * account refreshes that account's "wanted" key, so the owner keeps watching for subscribers it
 * does not serve itself, and gives the watch up once nobody anywhere wants it.
 *
 * Without Redis there is one process, and it always owns every watch.
 *
 * The same lease, under another key, says which process delivers an account's events to webhooks
 * (src/webhooks/dispatcher.ts): `leaseKey` picks the key; that use has no "wanted" side.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { keys } from '../cache/keys.js';
import type { RedisClient } from '../cache/redis-connection.js';

export interface WatchLeases {
  /** This process now owns the account's watch (true), or another one does (false). */
  tryAcquire(accountId: string): Promise<boolean>;
  /** Keeps the watch owned; false when it was lost (expired and taken by another process). */
  renew(accountId: string): Promise<boolean>;
  release(accountId: string): Promise<void>;
  /** Tells every process that this one wants the account watched (for one TTL). */
  want(accountId: string): Promise<void>;
  /** Whether any process still wants the account watched. */
  wanted(accountId: string): Promise<boolean>;
  /** How often holders renew and waiters try to take over. */
  readonly renewIntervalMs: number;
  /** How long a lease lasts after it was taken or renewed (Infinity: never lost). */
  readonly ttlMs: number;
}

export class LocalWatchLeases implements WatchLeases {
  readonly renewIntervalMs = 60_000;
  readonly ttlMs = Number.POSITIVE_INFINITY;
  async tryAcquire(): Promise<boolean> {
    return true;
  }
  async renew(): Promise<boolean> {
    return true;
  }
  async release(): Promise<void> {}
  async want(): Promise<void> {}
  async wanted(): Promise<boolean> {
    return false;
  }
}

// KEYS[1] lease; ARGV: owner, ttlMs. Extends the lease only while this process still owns it.
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0`;

// KEYS[1] lease; ARGV: owner. Deletes the lease only while this process owns it.
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

export class RedisWatchLeases implements WatchLeases {
  /** This process's identity in lease values (one per process, so a restart never inherits). */
  private readonly owner = `${process.pid}:${randomUUID()}`;
  readonly renewIntervalMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly log: Logger,
    readonly ttlMs = 30_000,
    private readonly leaseKey: (accountId: string) => string = keys.watchLease,
  ) {
    this.renewIntervalMs = Math.max(100, Math.floor(ttlMs / 3));
  }

  async tryAcquire(accountId: string): Promise<boolean> {
    const answer = await this.redis.set(this.leaseKey(accountId), this.owner, 'PX', this.ttlMs, 'NX');
    return answer === 'OK';
  }

  async renew(accountId: string): Promise<boolean> {
    const renewed = await this.redis.eval(RENEW_SCRIPT, 1, this.leaseKey(accountId), this.owner, String(this.ttlMs));
    return Number(renewed) === 1;
  }

  async release(accountId: string): Promise<void> {
    await this.redis.eval(RELEASE_SCRIPT, 1, this.leaseKey(accountId), this.owner).catch((err: unknown) => {
      this.log.warn({ account: accountId, err: { message: (err as Error).message } }, 'could not release a watch lease; it expires on its own');
    });
  }

  async want(accountId: string): Promise<void> {
    await this.redis.set(keys.watchWanted(accountId), '1', 'PX', this.ttlMs);
  }

  async wanted(accountId: string): Promise<boolean> {
    return (await this.redis.exists(keys.watchWanted(accountId))) === 1;
  }
}
