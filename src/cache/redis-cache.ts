/**
 * The cache in Redis. Every operation is best effort: on any Redis error the call answers a miss
 * (or does nothing), the outage is counted and logged at warn once per outage, and `health()` says
 * 'degraded' until a command succeeds again.
 */
import type { Logger } from 'pino';
import type { Cache } from './cache.js';
import type { RedisClient } from './redis-connection.js';
import { Cluster } from 'ioredis';

export class RedisCache implements Cache {
  private degraded = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly log: Logger,
    private readonly onDegraded: () => void = () => undefined,
  ) {
    // The connection came back: the next operation will tell if Redis really answers again.
    redis.on('ready', () => {
      if (!this.degraded) return;
      this.degraded = false;
      this.log.warn('redis cache is reachable again');
    });
  }

  async get(key: string): Promise<Buffer | null> {
    return this.guard(() => this.redis.getBuffer(key), null);
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    await this.guard(() => this.redis.set(key, value, 'EX', Math.max(1, Math.ceil(ttlSeconds))), null);
  }

  async delete(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    // One UNLINK per key: keys of different accounts may sit in different cluster slots.
    await this.guard(() => Promise.all(keys.map((k) => this.redis.unlink(k))), null);
  }

  async deletePrefix(prefix: string): Promise<void> {
    const nodes = this.redis instanceof Cluster ? this.redis.nodes('master') : [this.redis];
    await this.guard(async () => {
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, found] = await node.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 500);
          cursor = next;
          if (found.length > 0) await Promise.all(found.map((k) => node.unlink(k)));
        } while (cursor !== '0');
      }
      return null;
    }, null);
  }

  health(): 'ok' | 'degraded' {
    return this.degraded || this.redis.status !== 'ready' ? 'degraded' : 'ok';
  }

  async close(): Promise<void> {
    // The connection is shared and closed by its owner (app.ts).
  }

  private async guard<T>(op: () => Promise<T>, fallback: T): Promise<T> {
    try {
      const result = await op();
      if (this.degraded) {
        this.degraded = false;
        this.log.warn('redis cache is reachable again');
      }
      return result;
    } catch (err) {
      // Counted by the caller's metric (mailgw_redis_degradations_total).
      this.onDegraded();
      if (!this.degraded) {
        this.degraded = true;
        this.log.warn({ err: { message: (err as Error).message } }, 'redis cache unreachable, serving uncached');
      }
      return fallback;
    }
  }
}

function escapeGlob(value: string): string {
  return value.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
