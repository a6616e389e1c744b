/**
 * Tells the other gateway processes on the same Redis that an account was changed or deleted, so
 * they stop using their copy of its record (src/accounts/last-known-store.ts) and, when its
 * connection settings changed or it is gone, log its sessions out and forget its local pages.
 *
 * Redis pub/sub delivers at most once and only to connected processes: a message missed during a
 * disconnection is covered by ACCOUNT_RECORD_FRESH_MS, after which every process reads the record
 * again anyway. So a change is seen everywhere at once in the normal case, and within that bound
 * always (docs/decisions/0008-cached-listings-and-account-records-across-processes.md).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { keys } from '../cache/keys.js';
import { connectRedis, type RedisClient } from '../cache/redis-connection.js';
import { Cluster } from 'ioredis';

export interface AccountChange {
  id: string;
  /** The record's connection settings changed, or the account is gone: its sessions are stale. */
  connection: boolean;
}

export interface AccountChanges {
  publish(change: AccountChange): void;
  /** Calls `onChange` for every change made through another process. */
  start(onChange: (change: AccountChange) => void): Promise<void>;
  close(): Promise<void>;
}

/** How long start waits for the subscription; a Redis that is down is subscribed to when it is back. */
const SUBSCRIBE_WAIT_MS = 2000;

export class RedisAccountChanges implements AccountChanges {
  /** Marks this process's own messages, which it has already acted on. */
  private readonly origin = randomUUID();
  private subscriber: RedisClient | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly log: Logger,
  ) {}

  publish(change: AccountChange): void {
    const message = JSON.stringify({ id: change.id, connection: change.connection, origin: this.origin });
    this.redis.publish(keys.accountChanges(), message).catch((err: unknown) => {
      this.log.warn({ err: { message: (err as Error).message }, account: change.id }, 'could not tell other processes of an account change');
    });
  }

  async start(onChange: (change: AccountChange) => void): Promise<void> {
    // A subscribed connection can run no other command: it is a connection of its own.
    // Resubscribed by the 'ready' handler below, not by ioredis itself (whose resubscribe's rejection is never handled).
    const subscriber: RedisClient = this.redis instanceof Cluster ? this.redis.duplicate() : this.redis.duplicate({ autoResubscribe: false });
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined); // outages are handled by the main connection's users
    subscriber.on('message', (_channel: string, text: string) => {
      const change = parseChange(text);
      if (change === null || change.origin === this.origin) return;
      onChange({ id: change.id, connection: change.connection });
    });
    // (Re)subscribed on every connect: one that failed while Redis was down is made when it is back.
    subscriber.on('ready', () => {
      subscriber.subscribe(keys.accountChanges()).catch(() => undefined);
    });
    if (await connectRedis(subscriber, SUBSCRIBE_WAIT_MS)) await subscriber.subscribe(keys.accountChanges()).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }
}

function parseChange(text: string): { id: string; connection: boolean; origin: string } | null {
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    if (typeof value.id !== 'string' || typeof value.connection !== 'boolean' || typeof value.origin !== 'string') return null;
    return { id: value.id, connection: value.connection, origin: value.origin };
  } catch {
    return null;
  }
}
