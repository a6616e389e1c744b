/**
 * Account use cases: create (with an optional verifying login), read, change, delete. Owns the
 * rules that tie accounts to the rest: defaults, egress checks, secret sealing, and dropping
 * sessions and cached data when connection settings change or the account goes.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Cache } from '../cache/cache.js';
import { keys } from '../cache/keys.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { MailAccount } from '../mail/account.js';
import type { MailBackend } from '../mail/backend.js';
import { protocolNotServed } from '../mail/mail-errors.js';
import { CAPABILITIES, type Capability } from '../mail/types.js';
import type { EgressPolicy } from '../net/egress.js';
import type { SmtpAccount } from '../outbox/smtp-transports.js';
import type { AccountChange, AccountChanges } from './account-changes.js';
import type { Sealer } from './sealing.js';
import type { AccountRecord, AccountStore, AuthMethod, Protocol, Security, SmtpSettingsRecord } from './types.js';

export interface AccountInput {
  id?: string;
  protocol: Protocol;
  host: string;
  port?: number;
  security?: Security;
  username: string;
  password?: string;
  accessToken?: string;
  tlsVerify?: boolean;
  name?: string | null;
  /** The account's own address (API.md, Sending); default: the username when it is an address. */
  email?: string | null;
  smtp?: SmtpInput;
}

/** SMTP settings as a request gives them; username and secret default to the account's own. */
export interface SmtpInput {
  host: string;
  port?: number;
  security?: Security;
  username?: string;
  password?: string;
  accessToken?: string;
  tlsVerify?: boolean;
}

/** A PATCH: any field but `id`; `smtp` merges into the settings there are (null removes them). */
export type AccountPatch = Partial<Omit<AccountInput, 'id' | 'smtp'>> & { smtp?: Partial<SmtpInput> | null };

/** What the API shows of SMTP settings: no secret. */
export interface SmtpView {
  host: string;
  port: number;
  security: Security;
  username: string;
  authMethod: AuthMethod;
  tlsVerify: boolean;
}

/** What the account service needs of SMTP: a verifying login, and letting go of pooled connections. */
export interface SmtpSessions {
  verify(account: SmtpAccount): Promise<void>;
  drop(accountId: string): void;
}

/** What the API shows of an account: no secret, plus what it can do. */
export interface AccountView {
  id: string;
  protocol: Protocol;
  host: string;
  port: number;
  security: Security;
  username: string;
  authMethod: AuthMethod;
  tlsVerify: boolean;
  name: string | null;
  createdAt: string;
  updatedAt: string;
  capabilities: Capability[];
  /** The address messages are sent from by default; null when neither given nor the username. */
  email: string | null;
  smtp: SmtpView | null;
}

export interface AccountServiceOptions {
  store: AccountStore;
  sealer: Sealer;
  egress: EgressPolicy;
  backends: Partial<Record<Protocol, MailBackend>>;
  cache: Cache;
  log: Logger;
  /** With Redis: tells other gateway processes of changes, and hears of theirs. */
  changes?: AccountChanges;
  /** Called once an account is deleted: what else holds its data (the event log, its watcher) lets go. */
  onDeleted?: (id: string) => Promise<void>;
  /** Called once an account is created (webhooks covering every account start covering it). */
  onCreated?: (id: string) => void;
  /** SMTP logins for `verify`, and the pooled connections to drop when settings change. */
  smtp?: SmtpSessions;
}

/** Path dot-segments: valid under the id pattern, but not addressable as a path segment. */
const DOT_SEGMENT = /^\.{1,2}$/;

/** Fields whose change invalidates open sessions and cached data. */
const CONNECTION_FIELDS = ['protocol', 'host', 'port', 'security', 'username', 'password', 'accessToken', 'tlsVerify'] as const;

/** RFC 8314 §3.3: submission over implicit TLS on 465; STARTTLS (or clear text) on 587 (RFC 6409). */
export function defaultSmtpPort(security: Security): number {
  return security === 'tls' ? 465 : 587;
}

/** An addr-spec, loosely (RFC 5322 §3.4.1): the API's own checks are in the schema; this tells a username that is an address. */
const LOOKS_LIKE_ADDRESS = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** RFC 9051 §2.1 / RFC 8314 §3.3 ports: implicit TLS on 993/995, clear text (or STARTTLS) on 143/110. */
export function defaultPort(protocol: Protocol, security: Security): number {
  if (protocol === 'imap') return security === 'tls' ? 993 : 143;
  return security === 'tls' ? 995 : 110;
}


export class AccountService {
  constructor(private readonly options: AccountServiceOptions) {}

  async create(input: AccountInput, verify: boolean): Promise<AccountView> {
    const backend = this.backend(input.protocol);
    if ((input.password === undefined) === (input.accessToken === undefined)) {
      throw new GatewayError('VALIDATION_FAILED', 'body must have exactly one of password or accessToken');
    }
    if (input.id !== undefined && DOT_SEGMENT.test(input.id)) {
      // "." and ".." are dot-segments (RFC 3986 §5.2.4): clients and proxies remove them from paths,
      // so /v1/accounts/.. could never be read, changed or deleted.
      throw new GatewayError('VALIDATION_FAILED', 'body/id must not be "." or ".."');
    }
    const security = input.security ?? 'tls';
    const now = new Date().toISOString();
    const record: AccountRecord = {
      id: input.id ?? generateAccountId(),
      protocol: input.protocol,
      host: input.host,
      port: input.port ?? defaultPort(input.protocol, security),
      security,
      username: input.username,
      authMethod: input.password !== undefined ? 'password' : 'accessToken',
      sealedSecret: this.options.sealer.seal(input.password ?? input.accessToken ?? ''),
      tlsVerify: input.tlsVerify ?? true,
      name: input.name ?? null,
      createdAt: now,
      updatedAt: now,
      ...(input.email !== undefined && input.email !== null ? { email: input.email } : {}),
      ...(input.smtp !== undefined ? { smtp: this.smtpRecord(input.smtp, null) } : {}),
    };
    if (input.id !== undefined && (await this.options.store.get(input.id)) !== null) {
      // Checked before dialling anything: a taken id should not cost a login. The store's create
      // is atomic and still refuses a race.
      throw accountExists(input.id);
    }
    await this.options.egress.resolve(record.host);
    if (record.smtp) await this.options.egress.resolve(record.smtp.host);
    if (verify) record.capabilities = await verifyNewSettings(backend, this.mailAccount(record), 'nothing was saved');
    if (verify && record.smtp) await this.verifySmtp(record, 'nothing was saved');
    await this.options.store.create(record);
    this.options.log.info({ account: record.id, protocol: record.protocol, verified: verify }, 'account created');
    this.options.onCreated?.(record.id);
    return this.view(record);
  }

  async list(): Promise<AccountView[]> {
    const records = await this.options.store.list();
    return records.map((r) => this.view(r));
  }

  /** The stored record, or `ACCOUNT_NOT_FOUND`. */
  async get(id: string): Promise<AccountRecord> {
    const record = await this.options.store.get(id);
    if (record === null) throw new GatewayError('ACCOUNT_NOT_FOUND', `No account ${id}`);
    return record;
  }

  async getView(id: string): Promise<AccountView> {
    return this.view(await this.get(id));
  }

  async update(id: string, patch: AccountPatch, verify: boolean): Promise<AccountView> {
    const current = await this.get(id);
    if (patch.password !== undefined && patch.accessToken !== undefined) {
      throw new GatewayError('VALIDATION_FAILED', 'body may have password or accessToken, not both');
    }
    const protocol = patch.protocol ?? current.protocol;
    const security = patch.security ?? current.security;
    const backend = this.backend(protocol);
    // A port left at the old default follows the new protocol or security to the new default.
    const portWasDefault = current.port === defaultPort(current.protocol, current.security);
    const port = patch.port ?? (portWasDefault ? defaultPort(protocol, security) : current.port);
    const secret = patch.password ?? patch.accessToken;
    const next: AccountRecord = {
      ...current,
      protocol,
      host: patch.host ?? current.host,
      port,
      security,
      username: patch.username ?? current.username,
      authMethod: patch.password !== undefined ? 'password' : patch.accessToken !== undefined ? 'accessToken' : current.authMethod,
      sealedSecret: secret !== undefined ? this.options.sealer.seal(secret) : current.sealedSecret,
      tlsVerify: patch.tlsVerify ?? current.tlsVerify,
      name: patch.name !== undefined ? patch.name : current.name,
      updatedAt: new Date().toISOString(),
    };
    if (patch.email !== undefined) {
      if (patch.email === null) delete next.email;
      else next.email = patch.email;
    }
    if (patch.smtp !== undefined) {
      if (patch.smtp === null) delete next.smtp;
      else next.smtp = this.mergeSmtp(current.smtp ?? null, patch.smtp);
    }
    const connectionChanged = CONNECTION_FIELDS.some((field) => patch[field] !== undefined);
    // SMTP that borrows the account's username or secret changes with them.
    const smtpChanged = patch.smtp !== undefined || (connectionChanged && next.smtp !== undefined && next.smtp !== null && (next.smtp.username === null || next.smtp.sealedSecret === null));
    if (connectionChanged) {
      await this.options.egress.resolve(next.host);
      if (verify) next.capabilities = await verifyNewSettings(backend, this.mailAccount(next), 'the account was not changed');
      else delete next.capabilities;
    }
    if (smtpChanged && next.smtp) {
      await this.options.egress.resolve(next.smtp.host);
      if (verify) await this.verifySmtp(next, 'the account was not changed');
    }
    await this.options.store.update(next);
    // Told first: the other processes stop using their sessions while this one closes its own.
    this.options.changes?.publish({ id, connection: connectionChanged || smtpChanged });
    if (connectionChanged) await this.forgetSessionsAndCache(current);
    if (smtpChanged) this.options.smtp?.drop(id);
    return this.view(next);
  }

  async delete(id: string): Promise<void> {
    const current = await this.get(id);
    await this.options.store.delete(id);
    this.options.changes?.publish({ id, connection: true });
    await this.forgetSessionsAndCache(current);
    this.options.smtp?.drop(id);
    await this.options.onDeleted?.(id).catch((err: unknown) => {
      this.options.log.warn({ account: id, err: { message: (err as Error).message } }, 'could not drop the deleted account\'s events');
    });
    this.options.log.info({ account: id }, 'account deleted');
  }

  /**
   * Another gateway process changed or deleted the account: read its record afresh, and when its
   * connection settings changed (or it is gone), log its sessions here out and forget local pages.
   * The shared cache was purged by the process that made the change.
   */
  async applyRemoteChange(change: AccountChange): Promise<void> {
    this.options.store.forget?.(change.id);
    if (!change.connection) return;
    // The old protocol is not known here any more: every backend lets go of the account.
    await Promise.all(Object.values(this.options.backends).map((backend) => backend?.dropAccount(change.id)));
    this.options.smtp?.drop(change.id);
    this.options.log.info({ account: change.id }, 'account changed through another process: its sessions here are closed');
  }

  /** The account with its secret unsealed, for a backend about to connect. */
  async resolveMailAccount(id: string): Promise<MailAccount> {
    return this.mailAccount(await this.get(id));
  }

  /**
   * The account's SMTP settings with the secret unsealed, for a submission; `SMTP_NOT_CONFIGURED`
   * when it has none.
   */
  async resolveSmtpAccount(id: string): Promise<SmtpAccount> {
    return this.smtpAccount(await this.get(id));
  }

  /** The address the account sends from by default (API.md: `email`, else the username when it is one). */
  static emailOf(record: AccountRecord): string | null {
    if (typeof record.email === 'string') return record.email;
    return LOOKS_LIKE_ADDRESS.test(record.username) ? record.username : null;
  }

  private smtpAccount(record: AccountRecord): SmtpAccount {
    const smtp = record.smtp;
    if (!smtp) {
      throw new GatewayError('SMTP_NOT_CONFIGURED', `Account ${record.id} has no smtp settings; add them with PATCH /v1/accounts/${record.id}`);
    }
    const own = smtp.sealedSecret === null;
    const secret = this.options.sealer.open(own ? record.sealedSecret : smtp.sealedSecret!);
    const method = own ? record.authMethod : smtp.authMethod!;
    return {
      accountId: record.id,
      host: smtp.host,
      port: smtp.port,
      security: smtp.security,
      username: smtp.username ?? record.username,
      credentials: method === 'password' ? { password: secret } : { accessToken: secret },
      tlsVerify: smtp.tlsVerify,
    };
  }

  private smtpRecord(input: SmtpInput, current: SmtpSettingsRecord | null): SmtpSettingsRecord {
    if (input.password !== undefined && input.accessToken !== undefined) {
      throw new GatewayError('VALIDATION_FAILED', 'body/smtp may have password or accessToken, not both');
    }
    const security = input.security ?? current?.security ?? 'tls';
    const portWasDefault = current === null || current.port === defaultSmtpPort(current.security);
    const secret = input.password ?? input.accessToken;
    return {
      host: input.host,
      port: input.port ?? (portWasDefault ? defaultSmtpPort(security) : current.port),
      security,
      username: input.username ?? current?.username ?? null,
      authMethod: input.password !== undefined ? 'password' : input.accessToken !== undefined ? 'accessToken' : (current?.authMethod ?? null),
      sealedSecret: secret !== undefined ? this.options.sealer.seal(secret) : (current?.sealedSecret ?? null),
      tlsVerify: input.tlsVerify ?? current?.tlsVerify ?? true,
    };
  }

  private mergeSmtp(current: SmtpSettingsRecord | null, patch: Partial<SmtpInput>): SmtpSettingsRecord {
    const host = patch.host ?? current?.host;
    if (host === undefined) throw new GatewayError('VALIDATION_FAILED', 'body/smtp must have host: the account has no smtp settings yet');
    return this.smtpRecord({ ...patch, host }, current);
  }

  /** The SMTP login of create and PATCH; a refusal says what to check, and that nothing was written. */
  private async verifySmtp(record: AccountRecord, consequence: string): Promise<void> {
    if (this.options.smtp === undefined) return;
    try {
      await this.options.smtp.verify(this.smtpAccount(record));
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      throw new GatewayError(err.code, `${err.message}; ${consequence}`, { cause: err });
    }
  }

  private mailAccount(record: AccountRecord): MailAccount {
    const secret = this.options.sealer.open(record.sealedSecret);
    return {
      id: record.id,
      protocol: record.protocol,
      host: record.host,
      port: record.port,
      security: record.security,
      username: record.username,
      credentials: record.authMethod === 'password' ? { password: secret } : { accessToken: secret },
      tlsVerify: record.tlsVerify,
    };
  }

  private async forgetSessionsAndCache(record: AccountRecord): Promise<void> {
    await this.options.backends[record.protocol]?.dropAccount(record.id);
    await this.options.cache.deletePrefix(keys.accountCachePrefix(record.id));
  }

  private backend(protocol: Protocol): MailBackend {
    const backend = this.options.backends[protocol];
    if (backend === undefined) {
      throw protocolNotServed(protocol);
    }
    return backend;
  }

  /**
   * From the live sessions, else from the last verifying login, else what the protocol always offers.
   * A record saved by another gateway version may name capabilities this one does not serve: dropped.
   */
  private capabilitiesOf(record: AccountRecord): Capability[] {
    const backend = this.options.backends[record.protocol];
    const known = (caps: readonly string[]): Capability[] => caps.filter((c): c is Capability => (CAPABILITIES as readonly string[]).includes(c));
    return backend?.capabilities(record.id) ?? (record.capabilities ? known(record.capabilities) : undefined) ?? backend?.capabilitiesOf(record.id) ?? [];
  }

  private view(record: AccountRecord): AccountView {
    return {
      id: record.id,
      protocol: record.protocol,
      host: record.host,
      port: record.port,
      security: record.security,
      username: record.username,
      authMethod: record.authMethod,
      tlsVerify: record.tlsVerify,
      name: record.name,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
      // `send` exactly when the account can send: it has SMTP settings (API.md, Accounts).
      capabilities: record.smtp ? [...this.capabilitiesOf(record), 'send'] : this.capabilitiesOf(record),
      email: AccountService.emailOf(record),
      smtp: record.smtp
        ? {
            host: record.smtp.host,
            port: record.smtp.port,
            security: record.smtp.security,
            username: record.smtp.username ?? record.username,
            authMethod: record.smtp.authMethod ?? record.authMethod,
            tlsVerify: record.smtp.tlsVerify,
          }
        : null,
    };
  }
}

function generateAccountId(): string {
  // 72 random bits, URL-safe: unguessable enough that ids leak nothing about other accounts.
  return `acc_${randomBytes(9).toString('base64url')}`;
}

function accountExists(id: string): GatewayError {
  return new GatewayError('ACCOUNT_EXISTS', `An account with id ${id} already exists`);
}

/**
 * The verifying login of create and PATCH. A refusal there is about the credentials in the request,
 * not stored ones: say so, what to check, and that nothing was written. A more specific detail (the
 * server offers no OAuth2 login) is kept as it is.
 */
async function verifyNewSettings(backend: MailBackend, account: MailAccount, consequence: string): Promise<Capability[]> {
  try {
    return await backend.verify(account);
  } catch (err) {
    if (!isGatewayError(err) || err.code !== 'UPSTREAM_AUTH_FAILED') throw err;
    const secret = 'accessToken' in account.credentials ? 'access token' : 'password';
    const detail = err.message.includes('stored credentials')
      ? `The mail server refused the login with these credentials: check the username and ${secret}`
      : err.message;
    throw new GatewayError('UPSTREAM_AUTH_FAILED', `${detail}; ${consequence}`, { cause: err });
  }
}
