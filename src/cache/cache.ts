/**
 * The cache the services read through. Two implementations: Redis (`REDIS_URL`) and an in-memory
 * LRU with a byte budget (the embedded default). Keys come from `keys.ts`; every entry has a TTL.
 *
 * A cache never fails a request: implementations swallow their own outages (counting them) and
 * answer "miss", so a Redis outage degrades to uncached service (ARCHITECTURE.md, Cache).
 */
export interface Cache {
  get(key: string): Promise<Buffer | null>;
  set(key: string, value: Buffer, ttlSeconds: number): Promise<void>;
  delete(keys: string[]): Promise<void>;
  /** Drops every key starting with `prefix` (an account purge). */
  deletePrefix(prefix: string): Promise<void>;
  /** 'ok', or 'degraded' while the backing store is unreachable. */
  health(): 'ok' | 'degraded';
  close(): Promise<void>;
}

export async function getJson<T>(cache: Cache, key: string): Promise<T | null> {
  const buf = await cache.get(key);
  if (buf === null) return null;
  try {
    return JSON.parse(buf.toString('utf8')) as T;
  } catch {
    // A value we cannot read is a miss, and is dropped so it is rebuilt.
    await cache.delete([key]);
    return null;
  }
}

export async function setJson(cache: Cache, key: string, value: unknown, ttlSeconds: number): Promise<void> {
  await cache.set(key, Buffer.from(JSON.stringify(value), 'utf8'), ttlSeconds);
}
