/**
 * The account record as the stores hold it, and the one interface both stores (Redis, file) implement.
 *
 * Secrets live here only sealed (see ./sealing.ts); the HTTP layer never serialises `sealedSecret`.
 */

export type Protocol = 'imap' | 'pop3';
export type Security = 'tls' | 'starttls' | 'none';
export type AuthMethod = 'password' | 'accessToken' | 'oauth2';

/**
 * An OAuth2 grant's public settings (API.md, OAuth2 accounts). Its secrets (the refresh token and the
 * client secret) are in `sealedSecret` as sealed JSON (`OAuth2Secrets`), never here.
 */
export interface OAuth2SettingsRecord {
  provider: 'google' | 'microsoft' | 'custom';
  tokenUrl: string;
  clientId: string;
  /** null: none sent (the grant's own scope). */
  scope: string | null;
  /**
   * Names the grant as it was given (a keyed fingerprint of its token URL, client and refresh token,
   * src/accounts/sealing.ts): its tokens are kept under this id, so a grant given anew starts afresh and
   * a rotation of its refresh token keeps the id. Never shown. Absent in records saved before grant ids
   * existed: derived from the secrets then.
   */
  grantId?: string;
}

/** What `sealedSecret` holds, sealed, when `authMethod` is `oauth2`. */
export interface OAuth2Secrets {
  refreshToken: string;
  clientSecret: string | null;
}

/**
 * An account's SMTP submission settings (API.md, Sending). `username` and the secret are null when
 * they are the account's own (then a change of those follows here too).
 */
export interface SmtpSettingsRecord {
  host: string;
  port: number;
  security: Security;
  username: string | null;
  /** null: the account's own secret is used. */
  authMethod: AuthMethod | null;
  sealedSecret: string | null;
  /** Present when `authMethod` is `oauth2`: the SMTP settings' own grant. */
  oauth2?: OAuth2SettingsRecord | null;
  tlsVerify: boolean;
}

/** What the store holds. */
export interface AccountRecord {
  id: string;
  protocol: Protocol;
  host: string;
  port: number;
  security: Security;
  username: string;
  authMethod: AuthMethod;
  /** The sealed password, OAuth2 access token or OAuth2 secrets (`v1.<iv>.<tag>.<ciphertext>`). */
  sealedSecret: string;
  /** Present when `authMethod` is `oauth2`. */
  oauth2?: OAuth2SettingsRecord | null;
  tlsVerify: boolean;
  name: string | null;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601. */
  updatedAt: string;
  /** What the server offered at the last verifying login (see AccountService), when known. */
  capabilities?: string[];
  /** The account's own address as given; absent or null: the username when that is an address. */
  email?: string | null;
  /** SMTP submission settings; absent or null: the account cannot send. */
  smtp?: SmtpSettingsRecord | null;
}

export interface AccountStore {
  get(id: string): Promise<AccountRecord | null>;
  /** Every record, sorted by id (code-unit order). */
  list(): Promise<AccountRecord[]>;
  /** GatewayError `ACCOUNT_EXISTS` if the id is taken; atomic (no check-then-write race). */
  create(record: AccountRecord): Promise<void>;
  /** GatewayError `ACCOUNT_NOT_FOUND` if there is no record with `record.id`. */
  update(record: AccountRecord): Promise<void>;
  /**
   * Writes `next` only if the stored record is still `expected` (as read), atomically; false when it
   * changed or went meanwhile. For writes the gateway makes on its own (a rotated refresh token), which
   * must never undo a change a client made at the same time.
   */
  updateIf(expected: AccountRecord, next: AccountRecord): Promise<boolean>;
  /** True when a record was removed. */
  delete(id: string): Promise<boolean>;
  /** Throws when the store is unreachable (used by `GET /ready`). */
  ping(): Promise<void>;
  /** Drops any copy of the record this process keeps: another process changed it. */
  forget?(id: string): void;
  close(): Promise<void>;
}

const PROTOCOLS: readonly string[] = ['imap', 'pop3'];
const SECURITIES: readonly string[] = ['tls', 'starttls', 'none'];
const AUTH_METHODS: readonly string[] = ['password', 'accessToken', 'oauth2'];
const OAUTH2_PROVIDERS: readonly string[] = ['google', 'microsoft', 'custom'];

function oauth2RecordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not an object';
  const r = value as Record<string, unknown>;
  if (typeof r.provider !== 'string' || !OAUTH2_PROVIDERS.includes(r.provider)) return 'provider is invalid';
  if (typeof r.tokenUrl !== 'string' || r.tokenUrl === '') return 'tokenUrl is missing';
  if (typeof r.clientId !== 'string' || r.clientId === '') return 'clientId is missing';
  if (r.scope !== null && typeof r.scope !== 'string') return 'scope is neither a string nor null';
  if (r.grantId !== undefined && (typeof r.grantId !== 'string' || r.grantId === '')) return 'grantId is not a string';
  return null;
}

/**
 * Checks that a value read back from storage has the shape of an AccountRecord.
 * Returns a short description of the first problem, or null when the record is well-formed.
 * Stores use it so that a damaged record is reported as such instead of reaching a mail session.
 * The description never contains field values (one of them is the sealed secret).
 */
export function accountRecordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const r = value as Record<string, unknown>;
  const strings = ['id', 'host', 'username', 'sealedSecret', 'createdAt', 'updatedAt'] as const;
  for (const field of strings) {
    if (typeof r[field] !== 'string' || r[field] === '') return `field "${field}" is missing or not a string`;
  }
  if (typeof r.protocol !== 'string' || !PROTOCOLS.includes(r.protocol)) return 'field "protocol" is invalid';
  if (typeof r.security !== 'string' || !SECURITIES.includes(r.security)) return 'field "security" is invalid';
  if (typeof r.authMethod !== 'string' || !AUTH_METHODS.includes(r.authMethod)) return 'field "authMethod" is invalid';
  if (typeof r.port !== 'number' || !Number.isInteger(r.port) || r.port < 1 || r.port > 65535) {
    return 'field "port" is invalid';
  }
  if (typeof r.tlsVerify !== 'boolean') return 'field "tlsVerify" is not a boolean';
  if (r.name !== null && typeof r.name !== 'string') return 'field "name" is neither a string nor null';
  if (r.capabilities !== undefined && !Array.isArray(r.capabilities)) return 'field "capabilities" is not an array';
  if (r.email !== undefined && r.email !== null && typeof r.email !== 'string') return 'field "email" is neither a string nor null';
  if ((r.authMethod === 'oauth2') !== (r.oauth2 !== undefined && r.oauth2 !== null)) return 'fields "authMethod" and "oauth2" disagree';
  if (r.authMethod === 'oauth2') {
    const problem = oauth2RecordProblem(r.oauth2);
    if (problem !== null) return `field "oauth2": ${problem}`;
  }
  if (r.smtp !== undefined && r.smtp !== null) {
    const problem = smtpRecordProblem(r.smtp);
    if (problem !== null) return `field "smtp": ${problem}`;
  }
  return null;
}

function smtpRecordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const r = value as Record<string, unknown>;
  if (typeof r.host !== 'string' || r.host === '') return 'host is missing';
  if (typeof r.port !== 'number' || !Number.isInteger(r.port) || r.port < 1 || r.port > 65535) return 'port is invalid';
  if (typeof r.security !== 'string' || !SECURITIES.includes(r.security)) return 'security is invalid';
  if (r.username !== null && typeof r.username !== 'string') return 'username is neither a string nor null';
  if (r.authMethod !== null && (typeof r.authMethod !== 'string' || !AUTH_METHODS.includes(r.authMethod))) return 'authMethod is invalid';
  if ((r.authMethod === null) !== (r.sealedSecret === null) || (r.sealedSecret !== null && typeof r.sealedSecret !== 'string')) {
    return 'authMethod and sealedSecret must be given together';
  }
  if ((r.authMethod === 'oauth2') !== (r.oauth2 !== undefined && r.oauth2 !== null)) return 'authMethod and oauth2 disagree';
  if (r.authMethod === 'oauth2') {
    const problem = oauth2RecordProblem(r.oauth2);
    if (problem !== null) return `oauth2 ${problem}`;
  }
  if (typeof r.tlsVerify !== 'boolean') return 'tlsVerify is not a boolean';
  return null;
}

/** Copies only the known fields, so that stray properties never travel from storage to callers. */
export function pickAccountRecord(r: AccountRecord): AccountRecord {
  return {
    id: r.id,
    protocol: r.protocol,
    host: r.host,
    port: r.port,
    security: r.security,
    username: r.username,
    authMethod: r.authMethod,
    sealedSecret: r.sealedSecret,
    tlsVerify: r.tlsVerify,
    name: r.name,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    ...(Array.isArray(r.capabilities) ? { capabilities: r.capabilities.filter((c) => typeof c === 'string') } : {}),
    ...(typeof r.email === 'string' ? { email: r.email } : {}),
    ...(r.oauth2 ? { oauth2: pickOAuth2(r.oauth2) } : {}),
    ...(r.smtp ? { smtp: pickSmtp(r.smtp) } : {}),
  };
}

function pickOAuth2(o: OAuth2SettingsRecord): OAuth2SettingsRecord {
  return { provider: o.provider, tokenUrl: o.tokenUrl, clientId: o.clientId, scope: o.scope, ...(typeof o.grantId === 'string' ? { grantId: o.grantId } : {}) };
}

function pickSmtp(s: SmtpSettingsRecord): SmtpSettingsRecord {
  return {
    host: s.host,
    port: s.port,
    security: s.security,
    username: s.username,
    authMethod: s.authMethod,
    sealedSecret: s.sealedSecret,
    ...(s.oauth2 ? { oauth2: pickOAuth2(s.oauth2) } : {}),
    tlsVerify: s.tlsVerify,
  };
}

/** Sort order of `list()`: plain code-unit order, the same in every store and locale. */
export function compareById(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
