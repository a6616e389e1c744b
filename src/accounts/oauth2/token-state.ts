/**
 * Where an OAuth2 grant's current access token lives between logins, and the lease that lets one
 * renewal run at a time: in Redis, shared by every gateway process (keys in src/cache/keys.ts, under
 * the grant id's hash tag); without Redis, in this process (the embedded mode runs one process per
 * DATA_DIR, and a restart simply renews).
 *
 * The access token is stored sealed (src/accounts/sealing.ts); nothing here sees it in clear.
 */
import type { RedisClient } from '../../cache/redis-connection.js';
import { keys } from '../../cache/keys.js';
import { boundedStoreCall } from '../redis-store.js';

export interface TokenRecord {
  /**
   * The sealed access token and when it expires, once a renewal got one; `afterRefusal` when that
   * renewal was asked because a server refused the token before it.
   */
  token?: { sealed: string; expiresAtMs: number; afterRefusal?: boolean };
  /** The last renewal was refused: not tried again before `untilMs` (unless the grant changes). */
  refusal?: { detail: string; untilMs: number; count: number };
  /** The newest refresh token (sealed) when the provider rotated it: every process renews with it. */
  refreshToken?: string;
}

/** Every method takes the grant's id (`OAuth2SettingsRecord.grantId`). */
export interface TokenStateStore {
  read(grantId: string): Promise<TokenRecord | null>;
  /** Stores `record`, kept until `keepUntilMs`. */
  write(grantId: string, record: TokenRecord, keepUntilMs: number): Promise<void>;
  forget(grantId: string): Promise<void>;
  /**
   * Takes the renewal lease for `ttlMs`: `taken`, or not, with the failure of the renewal that last
   * held it when that failed within its `fail` time (see `fail`).
   */
  lease(grantId: string, owner: string, ttlMs: number): Promise<LeaseAnswer>;
  /** Gives the lease back, if `owner` still holds it. */
  release(grantId: string, owner: string): Promise<void>;
  /**
   * The renewal `owner` ran failed (not a refusal: the endpoint erred or timed out): the lease holds
   * the failure for `ttlMs`, so the renewals waiting in every process answer it at once instead of
   * asking the provider again one after another.
   */
  fail(grantId: string, owner: string, failure: RenewalFailure, ttlMs: number): Promise<void>;
  /**
   * Notes that `accountId` logs in with this grant (two accounts given the same grant share its tokens,
   * and each account record must get a rotated refresh token); kept for a week after the last note.
   */
  hold(grantId: string, accountId: string): Promise<void>;
  /** The accounts noted as holding the grant. */
  holders(grantId: string): Promise<string[]>;
}

/** How long a grant's holders are remembered after the last login with it. */
const HOLDERS_TTL_MS = 7 * 24 * 3_600_000;

export interface RenewalFailure {
  /** The token endpoint's own failure, as the API answers it. */
  code: 'UPSTREAM_TIMEOUT' | 'UPSTREAM_ERROR' | 'HOST_NOT_ALLOWED';
  detail: string;
}

export type LeaseAnswer = { taken: true } | { taken: false; failure: RenewalFailure | null };

/** A lease value that is a failure, not an owner. */
const FAILED = 'failed ';

function leaseAnswer(held: string | null): LeaseAnswer {
  if (held === null || !held.startsWith(FAILED)) return { taken: false, failure: null };
  try {
    return { taken: false, failure: JSON.parse(held.slice(FAILED.length)) as RenewalFailure };
  } catch {
    return { taken: false, failure: null };
  }
}

const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** SET NX PX, else the holder's value (one round trip). */
const LEASE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
return redis.call('GET', KEYS[1])
`;

const FAIL_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 0
`;

/**
 * Redis commands of the token state, bounded in time: an outage is a prompt 503 (SERVICE_UNAVAILABLE),
 * never a hung login or an error nobody maps.
 */
const OPERATION_TIMEOUT_MS = 5_000;
const bounded = <T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> => boundedStoreCall('OAuth2 token state', kind, OPERATION_TIMEOUT_MS, op);

export class RedisTokenState implements TokenStateStore {
  constructor(private readonly redis: RedisClient) {}

  async read(grantId: string): Promise<TokenRecord | null> {
    const text = await bounded('read', () => this.redis.get(keys.oauth2Token(grantId)));
    if (text === null) return null;
    try {
      return JSON.parse(text) as TokenRecord;
    } catch {
      return null;
    }
  }

  async write(grantId: string, record: TokenRecord, keepUntilMs: number): Promise<void> {
    await bounded('write', () => this.redis.set(keys.oauth2Token(grantId), JSON.stringify(record), 'PX', Math.max(1000, Math.ceil(keepUntilMs - Date.now()))));
  }

  async forget(grantId: string): Promise<void> {
    await bounded('write', () => this.redis.del(keys.oauth2Token(grantId), keys.oauth2Holders(grantId)));
  }

  async lease(grantId: string, owner: string, ttlMs: number): Promise<LeaseAnswer> {
    const answer = (await bounded('write', () => this.redis.eval(LEASE_SCRIPT, 1, keys.oauth2Renewal(grantId), owner, String(ttlMs)))) as number | string | null;
    return answer === 1 ? { taken: true } : leaseAnswer(typeof answer === 'string' ? answer : null);
  }

  async fail(grantId: string, owner: string, failure: RenewalFailure, ttlMs: number): Promise<void> {
    await bounded('write', () => this.redis.eval(FAIL_SCRIPT, 1, keys.oauth2Renewal(grantId), owner, FAILED + JSON.stringify(failure), String(ttlMs)));
  }

  async hold(grantId: string, accountId: string): Promise<void> {
    const key = keys.oauth2Holders(grantId);
    await bounded('write', () => this.redis.multi().sadd(key, accountId).pexpire(key, HOLDERS_TTL_MS).exec());
  }

  async holders(grantId: string): Promise<string[]> {
    return bounded('read', () => this.redis.smembers(keys.oauth2Holders(grantId)));
  }

  async release(grantId: string, owner: string): Promise<void> {
    await bounded('write', () => this.redis.eval(RELEASE_SCRIPT, 1, keys.oauth2Renewal(grantId), owner));
  }
}

export class MemoryTokenState implements TokenStateStore {
  private readonly records = new Map<string, { record: TokenRecord; keepUntilMs: number }>();
  private readonly leases = new Map<string, { owner: string; untilMs: number }>();
  private readonly holding = new Map<string, Set<string>>();

  constructor(private readonly now: () => number = Date.now) {}

  async read(grantId: string): Promise<TokenRecord | null> {
    const kept = this.records.get(grantId);
    if (kept === undefined || kept.keepUntilMs <= this.now()) return null;
    return structuredClone(kept.record);
  }

  async write(grantId: string, record: TokenRecord, keepUntilMs: number): Promise<void> {
    this.records.set(grantId, { record: structuredClone(record), keepUntilMs });
  }

  async forget(grantId: string): Promise<void> {
    this.records.delete(grantId);
    this.holding.delete(grantId);
  }

  async hold(grantId: string, accountId: string): Promise<void> {
    const set = this.holding.get(grantId) ?? new Set<string>();
    set.add(accountId);
    this.holding.set(grantId, set);
  }

  async holders(grantId: string): Promise<string[]> {
    return [...(this.holding.get(grantId) ?? [])];
  }

  async lease(grantId: string, owner: string, ttlMs: number): Promise<LeaseAnswer> {
    const held = this.leases.get(grantId);
    if (held !== undefined && held.untilMs > this.now() && held.owner !== owner) return leaseAnswer(held.owner);
    this.leases.set(grantId, { owner, untilMs: this.now() + ttlMs });
    return { taken: true };
  }

  async fail(grantId: string, owner: string, failure: RenewalFailure, ttlMs: number): Promise<void> {
    if (this.leases.get(grantId)?.owner === owner) this.leases.set(grantId, { owner: FAILED + JSON.stringify(failure), untilMs: this.now() + ttlMs });
  }

  async release(grantId: string, owner: string): Promise<void> {
    if (this.leases.get(grantId)?.owner === owner) this.leases.delete(grantId);
  }
}

