/**
 * The token use cases: create (the value shown once), list, delete, and authenticate a presented
 * value. A token record read is used for up to `freshForMs` (default 1 s) before it is read again,
 * so a deleted token is refused by every gateway process within that time without a store read on
 * every request. Unknown values are remembered for the same time, in a bounded map.
 */
import { GatewayError } from '../errors.js';
import type { Scope } from './scopes.js';
import { hashToken, newToken, sameDigest, tokenNotFound, type TokenRecord, type TokenStore } from './tokens.js';

export interface TokenInput {
  accounts: string[];
  scopes: Scope[];
  description?: string;
  expiresAt?: string;
}

export type TokenView = Omit<TokenRecord, 'hash'>;

/** The outcome of presenting a value: the token, or why it is refused (said in the 401's detail). */
export type Authentication = { token: TokenRecord } | { refused: string };

const REMEMBERED_MAX = 10_000;
/** lastUsedAt is written at most this often per token: a write per request would cost the store more than the read. */
const TOUCH_EVERY_MS = 60_000;

export class TokenService {
  private readonly remembered = new Map<string, { record: TokenRecord | null; readAt: number }>();
  /** Ids deleted here lately: a store read that began before the delete must not bring one back. */
  private readonly deletedAt = new Map<string, number>();

  constructor(
    private readonly store: TokenStore,
    private readonly options: { freshForMs?: number; now?: () => number } = {},
  ) {}

  async create(input: TokenInput): Promise<TokenView & { token: string }> {
    const now = this.now();
    const expiresAtMs = input.expiresAt === undefined ? undefined : Date.parse(input.expiresAt);
    // (A leap second, `…T23:59:60Z`, is a valid date-time that Date cannot represent.)
    if (expiresAtMs !== undefined && (!Number.isFinite(expiresAtMs) || expiresAtMs <= now)) {
      throw new GatewayError('VALIDATION_FAILED', 'body/expiresAt must be a time in the future (UTC, e.g. 2027-03-01T00:00:00Z)');
    }
    if (input.accounts.includes('*') && input.accounts.length > 1) {
      throw new GatewayError('VALIDATION_FAILED', 'body/accounts must be ["*"] alone or a list of account ids');
    }
    const { id, value } = newToken();
    const record: TokenRecord = {
      id,
      hash: hashToken(value),
      accounts: [...new Set(input.accounts)],
      scopes: [...new Set(input.scopes)],
      description: input.description ?? null,
      expiresAt: expiresAtMs === undefined ? null : new Date(expiresAtMs).toISOString(),
      createdAt: new Date(now).toISOString(),
      lastUsedAt: null,
    };
    await this.store.create(record);
    return { ...view(record), token: value };
  }

  async list(): Promise<TokenView[]> {
    return (await this.store.list()).map(view);
  }

  async get(id: string): Promise<TokenView> {
    const record = (await this.store.list()).find((r) => r.id === id);
    if (record === undefined) throw tokenNotFound(id);
    return view(record);
  }

  async delete(id: string): Promise<void> {
    if (!(await this.store.delete(id))) throw tokenNotFound(id);
    // Refused here at once; other processes within freshForMs.
    this.deletedAt.set(id, this.now());
    for (const [hash, entry] of this.remembered) if (entry.record?.id === id) this.remembered.delete(hash);
  }

  /** Finds the token a request presents. Unknown and wrong values take the same path: a lookup by hash. */
  async authenticate(value: string): Promise<Authentication> {
    const hash = hashToken(value);
    const record = await this.lookup(hash);
    if (record === null || !sameDigest(record.hash, hash) || this.deletedLately(record.id)) return { refused: 'Unknown or deleted access token' };
    const now = this.now();
    if (record.expiresAt !== null && Date.parse(record.expiresAt) <= now) {
      return { refused: `The access token expired at ${record.expiresAt}; an admin can issue a new one` };
    }
    if (record.lastUsedAt === null || now - Date.parse(record.lastUsedAt) >= TOUCH_EVERY_MS) {
      const touched = { ...record, lastUsedAt: new Date(now).toISOString() };
      this.remembered.set(hash, { record: touched, readAt: this.remembered.get(hash)?.readAt ?? now });
      this.store.touch(record, touched.lastUsedAt).catch(() => undefined);
    }
    return { token: record };
  }

  private async lookup(hash: string): Promise<TokenRecord | null> {
    const freshForMs = this.options.freshForMs ?? 1000;
    const now = this.now();
    const entry = this.remembered.get(hash);
    if (entry !== undefined && now - entry.readAt < freshForMs) return entry.record;
    let record: TokenRecord | null;
    try {
      record = await this.store.findByHash(hash);
    } catch (err) {
      // The store is unreachable: a token this process knows stays usable (as account records do);
      // an unknown one cannot be told from a wrong one, so the store's 503 stands.
      if (entry?.record) return entry.record;
      throw err;
    }
    if (this.remembered.size >= REMEMBERED_MAX) this.remembered.delete(this.remembered.keys().next().value as string);
    this.remembered.delete(hash);
    this.remembered.set(hash, { record, readAt: now });
    return record;
  }

  private deletedLately(id: string): boolean {
    const at = this.deletedAt.get(id);
    if (at === undefined) return false;
    if (this.now() - at < 10 * (this.options.freshForMs ?? 1000)) return true;
    this.deletedAt.delete(id);
    return false;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

function view(record: TokenRecord): TokenView {
  const { hash: _hash, ...rest } = record;
  return rest;
}
