/**
 * In-memory LRU with a byte budget: the cache when no Redis is configured, and the process's copy
 * of hot listing pages in front of Redis. A `Map` keeps insertion order, so re-inserting on read
 * makes the first key the least recently used. An entry read again within TOUCH_INTERVAL_MS of its
 * last move keeps its place: a hot entry is moved once a second, not on each of thousands of reads,
 * so eviction follows recency of use to within a second.
 */
import type { Cache } from './cache.js';

interface Entry {
  value: Buffer;
  expiresAtMs: number;
  touchedAtMs: number;
}

const TOUCH_INTERVAL_MS = 1000;

/** Rough per-entry overhead (Map slot, object, key string) so many tiny entries still count. */
const ENTRY_OVERHEAD_BYTES = 96;

export class MemoryCache implements Cache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get sizeBytes(): number {
    return this.bytes;
  }

  async get(key: string): Promise<Buffer | null> {
    const entry = this.entries.get(key);
    if (entry === undefined) return null;
    const now = this.now();
    if (entry.expiresAtMs <= now) {
      this.remove(key, entry);
      return null;
    }
    if (now - entry.touchedAtMs >= TOUCH_INTERVAL_MS) {
      entry.touchedAtMs = now;
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry.value;
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    const old = this.entries.get(key);
    if (old !== undefined) this.remove(key, old);
    const cost = this.cost(key, value);
    if (cost > this.maxBytes) return; // larger than the whole budget: not worth evicting everything
    const now = this.now();
    this.entries.set(key, { value, expiresAtMs: now + ttlSeconds * 1000, touchedAtMs: now });
    this.bytes += cost;
    for (const [oldestKey, oldest] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.remove(oldestKey, oldest);
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry !== undefined) this.remove(key, entry);
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    for (const [key, entry] of this.entries) {
      if (key.startsWith(prefix)) this.remove(key, entry);
    }
  }

  health(): 'ok' {
    return 'ok';
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.bytes = 0;
  }

  private cost(key: string, value: Buffer): number {
    return key.length * 2 + value.byteLength + ENTRY_OVERHEAD_BYTES;
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= this.cost(key, entry.value);
  }
}
