/**
 * Access tokens: scoped credentials an admin hands to a tenant (accounts × scopes). The token's value
 * is shown once, at creation; only its SHA-256 is stored (the value carries 256 random bits, so a
 * fast hash is enough: nothing to brute-force). A request's token is found by its hash, so an
 * unknown token and a wrong one take the same path (no timing difference between them).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { GatewayError } from '../errors.js';
import type { Scope } from './scopes.js';

/** Tokens start with this, so they are recognisable in a config file or a leak scanner. */
export const TOKEN_PREFIX = 'mgw_';
/** Token ids are not secret (they appear in lists and logs); the prefix tells them from tokens. */
const ID_PREFIX = 'tok_';

export interface TokenRecord {
  id: string;
  /** Hex SHA-256 of the token's value. */
  hash: string;
  /** Account ids, or `['*']` for every account. */
  accounts: string[];
  scopes: Scope[];
  description: string | null;
  expiresAt: string | null;
  createdAt: string;
  lastUsedAt: string | null;
}

/** Where tokens live: the account store's backend (a file under DATA_DIR, or Redis). */
export interface TokenStore {
  /** GatewayError on failure; ids and hashes are unique by construction. */
  create(record: TokenRecord): Promise<void>;
  findByHash(hash: string): Promise<TokenRecord | null>;
  list(): Promise<TokenRecord[]>;
  /** True when a token with this id existed. */
  delete(id: string): Promise<boolean>;
  /** Records when a token was last used (best effort; never brings a deleted token back). */
  touch(record: TokenRecord, lastUsedAt: string): Promise<void>;
  close(): Promise<void>;
}

export function hashToken(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** A new token: the value (shown once) and the id it is listed under. */
export function newToken(): { id: string; value: string } {
  return {
    id: `${ID_PREFIX}${randomBytes(12).toString('base64url')}`,
    value: `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`,
  };
}

/** Compares two hex digests of equal length in constant time. */
export function sameDigest(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && timingSafeEqual(left, right);
}

export function tokenNotFound(id: string): GatewayError {
  return new GatewayError('TOKEN_NOT_FOUND', `No token ${id}`);
}

/** The stored form's own check: anything else in a store is corrupt. */
export function tokenRecordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const r = value as Record<string, unknown>;
  if (typeof r.id !== 'string' || !r.id.startsWith(ID_PREFIX)) return 'bad "id"';
  if (typeof r.hash !== 'string' || !/^[0-9a-f]{64}$/.test(r.hash)) return 'bad "hash"';
  if (!Array.isArray(r.accounts) || !r.accounts.every((a) => typeof a === 'string')) return 'bad "accounts"';
  if (!Array.isArray(r.scopes) || !r.scopes.every((s) => typeof s === 'string')) return 'bad "scopes"';
  return null;
}
