/**
 * Where an OAuth2 grant's current access token lives between logins, and the lease that lets one
 * renewal run at a time: in Redis, shared by every gateway process (keys in src/cache/keys.ts, under
 * the account's hash tag); without Redis, in this process (the embedded mode runs one process per
 * DATA_DIR, and a restart simply renews).
 *
 * The access token is stored sealed (src/accounts/sealing.ts); nothing here sees it in clear.
 */
import type { RedisClient } from '../../cache/redis-connection.js';
import { keys } from '../../cache/keys.js';

export interface TokenRecord {
  /** The sealed access token and when it expires, once a renewal got one. */
  token?: { sealed: string; expiresAtMs: number };
  /** The last renewal was refused: not tried again before `untilMs` (unless the grant changes). */
  refusal?: { detail: string; untilMs: number; count: number };
  /** The newest refresh token (sealed) when the provider rotated it: every process renews with it. */
  refreshToken?: string;
}

export interface TokenStateStore {
  read(accountId: string, grant: string): Promise<TokenRecord | null>;
  /** Stores `record`, kept until `keepUntilMs`. */
  write(accountId: string, grant: string, record: TokenRecord, keepUntilMs: number): Promise<void>;
  forget(accountId: string, grant: string): Promise<void>;
  /** Takes the renewal lease for `ttlMs`; false when another holder has it. */
  lease(accountId: string, grant: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease back, if `owner` still holds it. */
  release(accountId: string, grant: string, owner: string): Promise<void>;
}

const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export class RedisTokenState implements TokenStateStore {
  constructor(private readonly redis: RedisClient) {}

  async read(accountId: string, grant: string): Promise<TokenRecord | null> {
    const text = await this.redis.get(keys.oauth2Token(accountId, grant));
    if (text === null) return null;
    try {
      return JSON.parse(text) as TokenRecord;
    } catch {
      return null;
    }
  }

  async write(accountId: string, grant: string, record: TokenRecord, keepUntilMs: number): Promise<void> {
    await this.redis.set(keys.oauth2Token(accountId, grant), JSON.stringify(record), 'PX', Math.max(1000, Math.ceil(keepUntilMs - Date.now())));
  }

  async forget(accountId: string, grant: string): Promise<void> {
    await this.redis.del(keys.oauth2Token(accountId, grant));
  }

  async lease(accountId: string, grant: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(keys.oauth2Renewal(accountId, grant), owner, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async release(accountId: string, grant: string, owner: string): Promise<void> {
    await this.redis.eval(RELEASE_SCRIPT, 1, keys.oauth2Renewal(accountId, grant), owner);
  }
}

export class MemoryTokenState implements TokenStateStore {
  private readonly records = new Map<string, { record: TokenRecord; keepUntilMs: number }>();
  private readonly leases = new Map<string, { owner: string; untilMs: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  async read(accountId: string, grant: string): Promise<TokenRecord | null> {
    const kept = this.records.get(key(accountId, grant));
    if (kept === undefined || kept.keepUntilMs <= this.now()) return null;
    return structuredClone(kept.record);
  }

  async write(accountId: string, grant: string, record: TokenRecord, keepUntilMs: number): Promise<void> {
    this.records.set(key(accountId, grant), { record: structuredClone(record), keepUntilMs });
  }

  async forget(accountId: string, grant: string): Promise<void> {
    this.records.delete(key(accountId, grant));
  }

  async lease(accountId: string, grant: string, owner: string, ttlMs: number): Promise<boolean> {
    const held = this.leases.get(key(accountId, grant));
    if (held !== undefined && held.untilMs > this.now() && held.owner !== owner) return false;
    this.leases.set(key(accountId, grant), { owner, untilMs: this.now() + ttlMs });
    return true;
  }

  async release(accountId: string, grant: string, owner: string): Promise<void> {
    if (this.leases.get(key(accountId, grant))?.owner === owner) this.leases.delete(key(accountId, grant));
  }
}

const key = (accountId: string, grant: string): string => `${accountId}\0${grant}`;
