/**
 * A store for @fastify/rate-limit that asks Redis at most once per caller every `flushMs` (50 ms)
 * instead of once per request: on the cached listing path a round trip per request cost about a
 * third of the throughput (bench row c).
 *
 * A request whose caller this process has not heard of from Redis in the last `flushMs` adds itself
 * to Redis and waits for the count (every process's requests): so at low rates every count is exact.
 * Requests that follow within `flushMs` are counted here, on top of Redis's last answer, and added to
 * Redis in one batch at the end of the interval. The limit thus holds across processes to within what
 * the others counted in one interval. The window is Redis's (one key per caller, PEXPIRE'd when it is
 * created), as with the plugin's own Redis store. A Redis that does not answer leaves the count local
 * (requests pass rather than fail, as with `skipOnError`). Without Redis (the embedded mode, one
 * process) every count is this process's, answered at once.
 *
 * `hit` and `peek` answer with a value whenever no Redis call is needed, so the per-request check
 * (rate-limits.ts) goes on synchronously; `incr` and `read` are the plugin's callback interface.
 */
import type { Cluster, Redis } from 'ioredis';

/** Adds ARGV[1] to the counter, starting its window of ARGV[2] ms when it is new: [count, ms left]. */
const ADD_SCRIPT = `
local current = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {current, ttl}`;

/** Callers remembered at once; past it the entry closest to its reset goes. */
const MAX_ENTRIES = 50_000;

interface Entry {
  /** The count Redis last answered (every process's requests in this window). */
  counted: number;
  /** This process's requests not yet added to Redis. */
  pending: number;
  resetAtMs: number;
  windowMs: number;
  /** When Redis last answered for this caller (0: never). */
  heardAtMs: number;
  flushing: boolean;
}

/** The count in a caller's window so far, and the ms left of the window. */
export interface Count {
  current: number;
  ttl: number;
}

type Callback = (err: Error | null, result: Count | null) => void;

export class BatchedRedisStore {
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis | Cluster | undefined,
    private readonly prefix: string,
    private readonly flushMs = 50,
  ) {}

  /**
   * Counts one request of `key` and answers the count in its window and the ms left of it: at once
   * when this process may answer (a value, no promise, no closure: the per-request path), or once
   * Redis has been asked. Never rejects: a Redis that does not answer leaves the count local.
   */
  hit(key: string, timeWindow: number): Count | Promise<Count> {
    const now = Date.now();
    let entry = this.entries.get(key);
    if (entry === undefined || now >= entry.resetAtMs) {
      entry = { counted: 0, pending: 0, resetAtMs: now + timeWindow, windowMs: timeWindow, heardAtMs: 0, flushing: false };
      this.remember(key, entry);
    }
    entry.pending += 1;
    if (this.redis === undefined) return { current: entry.counted + entry.pending, ttl: entry.resetAtMs - now };
    if (!entry.flushing && now - entry.heardAtMs >= this.flushMs) {
      // Not heard of lately: ask Redis now, and answer with every process's count.
      const asked = entry;
      const answer = (): Count => ({ current: asked.counted + asked.pending, ttl: Math.max(0, asked.resetAtMs - Date.now()) });
      return this.add(key, asked).then(answer, answer);
    }
    this.schedule();
    return { current: entry.counted + entry.pending, ttl: Math.max(0, entry.resetAtMs - now) };
  }

  /** The count of `key` so far, without counting (from this process's knowledge: no Redis call). */
  peek(key: string): Count {
    const entry = this.entries.get(key);
    if (entry === undefined) return { current: 0, ttl: 0 };
    const now = Date.now();
    if (now >= entry.resetAtMs) {
      if (entry.pending === 0 && !entry.flushing) this.entries.delete(key);
      return { current: 0, ttl: 0 };
    }
    return { current: entry.counted + entry.pending, ttl: entry.resetAtMs - now };
  }

  /** Whether any caller is counted here (its window may have ended since). */
  get empty(): boolean {
    return this.entries.size === 0;
  }

  /** @fastify/rate-limit's store interface, for the per-route limits it counts. */
  incr(key: string, callback: Callback, timeWindow: number): void {
    const counted = this.hit(key, timeWindow);
    if (counted instanceof Promise) void counted.then((count) => callback(null, count));
    else callback(null, counted);
  }

  read(key: string, callback: Callback): void {
    callback(null, this.peek(key));
  }

  /** The plugin's per-route limits get a store of their own, under the route's name. */
  child(routeOptions: { routeInfo: { method?: string; url?: string } }): BatchedRedisStore {
    return new BatchedRedisStore(this.redis, `${this.prefix}${routeOptions.routeInfo.method ?? ''}${routeOptions.routeInfo.url ?? ''}-`, this.flushMs);
  }

  /** Adds this process's pending requests to Redis and takes its count and window. */
  private async add(key: string, entry: Entry): Promise<void> {
    if (this.redis === undefined) return;
    const adding = entry.pending;
    entry.pending = 0;
    entry.flushing = true;
    try {
      const [count, ttlMs] = (await this.redis.eval(ADD_SCRIPT, 1, `${this.prefix}${key}`, String(adding), String(entry.windowMs))) as [number, number];
      entry.counted = Number(count);
      entry.resetAtMs = Date.now() + Number(ttlMs);
      entry.heardAtMs = Date.now();
    } catch (err) {
      // Redis did not answer: this process's requests still count here.
      entry.counted += adding;
      throw err;
    } finally {
      entry.flushing = false;
    }
  }

  private remember(key: string, entry: Entry): void {
    this.entries.delete(key);
    if (this.entries.size >= MAX_ENTRIES) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, entry);
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.flushMs);
    this.timer.unref();
  }

  private flush(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) {
      if (entry.pending === 0) {
        if (now >= entry.resetAtMs) this.entries.delete(key);
        continue;
      }
      if (!entry.flushing) void this.add(key, entry).catch(() => undefined);
    }
    if ([...this.entries.values()].some((e) => e.pending > 0)) this.schedule();
  }
}
