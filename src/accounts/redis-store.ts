/**
 * Account store in Redis: one hash, `keys.accounts()`, field = account id, value = the record as JSON.
 *
 * The hash never gets a TTL, so Redis can run with `maxmemory-policy volatile-lru` and evict only cache.
 * One key means every command is single-slot, so the same code works on a Redis Cluster.
 *
 * Failure policy: when Redis cannot answer (down, timed out, OOM, wrong type) or a stored record cannot
 * be parsed, every method throws GatewayError SERVICE_UNAVAILABLE (503). It never answers "not found"
 * or an empty list it does not know to be true. Unlike the cache, the account store has no degraded mode.
 */
import type { Cluster, Redis } from 'ioredis';
import { GatewayError, isGatewayError } from '../errors.js';
import { keys } from '../cache/keys.js';
import {
  accountRecordProblem,
  compareById,
  pickAccountRecord,
  type AccountRecord,
  type AccountStore,
} from './types.js';

export interface RedisAccountStoreOptions {
  /**
   * Upper bound on one store operation. ioredis by default queues commands while it reconnects and
   * retries them up to 20 times; this bound turns an outage into a prompt 503 instead of a hung request.
   * A write that timed out may still be applied later by Redis: 503 means "outcome unknown".
   */
  operationTimeoutMs?: number;
  /** Whether `close()` quits the client. Default false: the client is usually shared with the cache. */
  closeClient?: boolean;
}

const DEFAULT_OPERATION_TIMEOUT_MS = 5_000;

/** HSET only when the field exists, atomically (a check-then-set would resurrect a concurrently deleted record). */
export const UPDATE_IF_EXISTS = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0`;

/** HSET only when the field still holds the expected value, atomically (compare-and-set). */
const UPDATE_IF_UNCHANGED = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0`;

export class RedisAccountStore implements AccountStore {
  private readonly key = keys.accounts();
  private readonly operationTimeoutMs: number;
  private readonly closeClient: boolean;

  constructor(
    private readonly redis: Redis | Cluster,
    options: RedisAccountStoreOptions = {},
  ) {
    this.operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    this.closeClient = options.closeClient ?? false;
  }

  async get(id: string): Promise<AccountRecord | null> {
    const text = await this.call('read', () => this.redis.hget(this.key, id));
    return text === null ? null : this.parse(id, text);
  }

  async list(): Promise<AccountRecord[]> {
    const all = await this.call('read', () => this.redis.hgetall(this.key));
    // One unreadable record fails the whole listing: a list silently missing an account is a wrong answer.
    return Object.entries(all)
      .map(([id, text]) => this.parse(id, text))
      .sort(compareById);
  }

  async create(record: AccountRecord): Promise<void> {
    const created = await this.call('write', () => this.redis.hsetnx(this.key, record.id, serialise(record)));
    if (created !== 1) throw new GatewayError('ACCOUNT_EXISTS', `account "${record.id}" already exists`);
  }

  async update(record: AccountRecord): Promise<void> {
    const updated = await this.call('write', () =>
      this.redis.eval(UPDATE_IF_EXISTS, 1, this.key, record.id, serialise(record)),
    );
    if (updated !== 1) throw new GatewayError('ACCOUNT_NOT_FOUND', `account "${record.id}" does not exist`);
  }

  async updateIf(expected: AccountRecord, next: AccountRecord): Promise<boolean> {
    // Records are stored as serialise() writes them, and serialise() of a record read back gives the same text.
    const updated = await this.call('write', () => this.redis.eval(UPDATE_IF_UNCHANGED, 1, this.key, next.id, serialise(expected), serialise(next)));
    return updated === 1;
  }

  async delete(id: string): Promise<boolean> {
    const removed = await this.call('write', () => this.redis.hdel(this.key, id));
    return removed > 0;
  }

  /** Touches the accounts key itself, so on a cluster it checks the node that actually holds it. */
  async ping(): Promise<void> {
    await this.call('read', () => this.redis.hlen(this.key));
  }

  async close(): Promise<void> {
    if (!this.closeClient) return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private parse(id: string, text: string): AccountRecord {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw unreadable(id, err);
    }
    const problem = accountRecordProblem(value);
    if (problem) throw unreadable(id, new Error(problem));
    const record = pickAccountRecord(value as AccountRecord);
    if (record.id !== id) throw unreadable(id, new Error('the record id differs from its hash field'));
    return record;
  }

  private call<T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    return boundedStoreCall('account store', kind, this.operationTimeoutMs, op);
  }
}

/**
 * Runs one Redis operation of a store (accounts, tokens) with a time bound; any failure but a
 * GatewayError becomes SERVICE_UNAVAILABLE, so an outage is a prompt 503, never a hang or a wrong answer.
 */
export async function boundedStoreCall<T>(store: string, kind: 'read' | 'write', timeoutMs: number, op: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${store} ${kind} timed out after ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([op(), timeout]);
  } catch (err) {
    if (isGatewayError(err)) throw err;
    throw new AccountStoreUnreachable(`the ${store} is unavailable (${kind} failed)`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Redis did not answer (as opposed to answering with a record that cannot be read). */
export class AccountStoreUnreachable extends GatewayError {
  constructor(detail: string, options: { cause?: unknown } = {}) {
    // Redis outages are mostly short (a failover, a restart): a client may try again soon.
    super('SERVICE_UNAVAILABLE', detail, { ...options, retryAfterSeconds: 2 });
    this.name = 'AccountStoreUnreachable';
  }
}

function serialise(record: AccountRecord): string {
  return JSON.stringify(pickAccountRecord(record));
}

function unreadable(id: string, cause: unknown): GatewayError {
  // The detail names the account but quotes nothing of the stored text (it holds the sealed secret).
  return new GatewayError('SERVICE_UNAVAILABLE', `the stored record of account "${id}" cannot be read`, {
    cause: cause instanceof SyntaxError ? new Error('invalid JSON') : cause,
  });
}
