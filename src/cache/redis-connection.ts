/**
 * One Redis connection (or Cluster client) for the whole process, shared by the account store and
 * the cache. Commands fail fast while Redis is unreachable (no offline queue, one retry, a short
 * command timeout), so a Redis outage turns into a cache miss or a clear 503 within milliseconds
 * instead of requests piling up behind a reconnect.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

export interface RedisConnectionOptions {
  url: string | undefined;
  clusterNodes: string[];
  commandTimeoutMs?: number;
}

export function createRedisClient(options: RedisConnectionOptions): RedisClient {
  const common: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: 2000,
    // Reconnect forever with a capped backoff: the cache must come back by itself.
    retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
  };
  if (options.clusterNodes.length > 0) {
    const nodes = options.clusterNodes.map((node) => {
      const at = node.lastIndexOf(':');
      return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
    });
    return new Cluster(nodes, {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
      redisOptions: common,
    });
  }
  if (options.url === undefined) throw new Error('createRedisClient needs a URL or cluster nodes');
  return new Redis(options.url, common);
}

/** Connects, waiting at most `timeoutMs`; a Redis that is down at start leaves the gateway degraded, not dead. */
export async function connectRedis(client: RedisClient, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
