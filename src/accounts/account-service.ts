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
import type { MailAccount, MailCredentials } from '../mail/account.js';
import type { MailBackend } from '../mail/backend.js';
import { protocolNotServed } from '../mail/mail-errors.js';
import { CAPABILITIES, type Capability } from '../mail/types.js';
import type { EgressPolicy } from '../net/egress.js';
import type { SmtpAccount } from '../outbox/smtp-transports.js';
import type { AccountChange, AccountChanges } from './account-changes.js';
import type { Sealer } from './sealing.js';
import type { AccessTokens, OAuth2Grant } from './oauth2/access-tokens.js';
import { PROVIDER_PRESETS } from './oauth2/presets.js';
import type { AccountRecord, AccountStore, AuthMethod, OAuth2Secrets, OAuth2SettingsRecord, Protocol, Security, SmtpSettingsRecord } from './types.js';

export interface AccountInput {
  id?: string;
  protocol: Protocol;
  host: string;
  port?: number;
  security?: Security;
  username: string;
  password?: string;
  accessToken?: string;
  oauth2?: OAuth2Input;
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
  oauth2?: OAuth2Input;
  tlsVerify?: boolean;
}

/** An OAuth2 grant as a request gives it (API.md, OAuth2 accounts); presets fill the token URL and scope. */
export interface OAuth2Input {
  provider: OAuth2SettingsRecord['provider'];
  tokenUrl?: string;
  clientId: string;
  clientSecret?: string;
  refreshToken: string;
  scope?: string;
}

/** What the API shows of an OAuth2 grant: no secret. */
export type OAuth2View = Omit<OAuth2SettingsRecord, 'grantId'>;

/** A PATCH: any field but `id`; `smtp` merges into the settings there are (null removes them). */
export type AccountPatch = Partial<Omit<AccountInput, 'id' | 'smtp'>> & { smtp?: Partial<SmtpInput> | null };

/** What the API shows of SMTP settings: no secret. */
export interface SmtpView {
  host: string;
  port: number;
  security: Security;
  username: string;
  authMethod: AuthMethod;
  oauth2: OAuth2View | null;
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
  oauth2: OAuth2View | null;
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
  /** Access tokens of OAuth2 accounts (without it, OAuth2 settings are refused). */
  tokens?: AccessTokens;
}

/** Path dot-segments: valid under the id pattern, but not addressable as a path segment. */
const DOT_SEGMENT = /^\.{1,2}$/;

/** Fields whose change invalidates open sessions and cached data. */
const CONNECTION_FIELDS = ['protocol', 'host', 'port', 'security', 'username', 'password', 'accessToken', 'oauth2', 'tlsVerify'] as const;

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
    if ([input.password, input.accessToken, input.oauth2].filter((x) => x !== undefined).length !== 1) {
      throw new GatewayError('VALIDATION_FAILED', 'body must have exactly one of password, accessToken and oauth2');
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
      ...this.secretFields(input, 'body'),
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
    await this.checkTokenUrls(record);
    // A failed save leaves its grants' token state be (it expires by itself): a provider may have
    // rotated the refresh token at the verifying login, and the same grant given again finds the new one.
    if (verify) record.capabilities = await verifyNewSettings(backend, this.mailAccount(record), 'nothing was saved');
    if (verify && record.smtp) await this.verifySmtp(record, 'nothing was saved');
    // A provider that rotates refresh tokens did so at the verifying login: the record keeps the new one.
    await this.keepRotatedAtSave(record);
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
    // A copy: the store may hand out the record it keeps, and `next` shares parts of it.
    const current = structuredClone(await this.get(id));
    if ([patch.password, patch.accessToken, patch.oauth2].filter((x) => x !== undefined).length > 1) {
      throw new GatewayError('VALIDATION_FAILED', 'body may have one of password, accessToken and oauth2, not more');
    }
    const protocol = patch.protocol ?? current.protocol;
    const security = patch.security ?? current.security;
    const backend = this.backend(protocol);
    // A port left at the old default follows the new protocol or security to the new default.
    const portWasDefault = current.port === defaultPort(current.protocol, current.security);
    const port = patch.port ?? (portWasDefault ? defaultPort(protocol, security) : current.port);
    const secretChanged = patch.password !== undefined || patch.accessToken !== undefined || patch.oauth2 !== undefined;
    const next: AccountRecord = {
      ...current,
      protocol,
      host: patch.host ?? current.host,
      port,
      security,
      username: patch.username ?? current.username,
      ...(secretChanged ? this.secretFields(patch, 'body') : {}),
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
    if (secretChanged && next.authMethod !== 'oauth2') delete next.oauth2;
    // A new grant has an id of its own (secretFields): it starts afresh while the old one keeps its
    // token and refusal until the change is saved, so a change that fails leaves the account as it was.
    await this.checkTokenUrls(next);
    if (connectionChanged) {
      await this.options.egress.resolve(next.host);
      if (verify) next.capabilities = await verifyNewSettings(backend, this.mailAccount(next), 'the account was not changed');
      else delete next.capabilities;
    }
    if (smtpChanged && next.smtp) {
      await this.options.egress.resolve(next.smtp.host);
      if (verify) await this.verifySmtp(next, 'the account was not changed');
    }
    await this.keepRotatedAtSave(next);
    await this.options.store.update(next);
    // Told first: the other processes stop using their sessions while this one closes its own.
    this.options.changes?.publish({ id, connection: connectionChanged || smtpChanged });
    if (connectionChanged) await this.forgetSessionsAndCache(current);
    if (smtpChanged) this.options.smtp?.drop(id);
    await this.retireGrants(current, next, { mail: verify && connectionChanged, smtp: verify && smtpChanged });
    return this.view(next);
  }

  async delete(id: string): Promise<void> {
    const current = await this.get(id);
    await this.options.store.delete(id);
    await this.retireGrants(current, null, { mail: false, smtp: false });
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
    // Borrowing the account's own secret borrows its OAuth2 grant too, and so its tokens.
    const credentials = own
      ? this.credentials(record.id, 'mail', record.authMethod, record.sealedSecret, record.oauth2 ?? null)
      : this.credentials(record.id, 'smtp', smtp.authMethod!, smtp.sealedSecret!, smtp.oauth2 ?? null);
    return {
      accountId: record.id,
      host: smtp.host,
      port: smtp.port,
      security: smtp.security,
      username: smtp.username ?? record.username,
      credentials,
      tlsVerify: smtp.tlsVerify,
    };
  }

  private smtpRecord(input: SmtpInput, current: SmtpSettingsRecord | null): SmtpSettingsRecord {
    if ([input.password, input.accessToken, input.oauth2].filter((x) => x !== undefined).length > 1) {
      throw new GatewayError('VALIDATION_FAILED', 'body/smtp may have one of password, accessToken and oauth2, not more');
    }
    const security = input.security ?? current?.security ?? 'tls';
    const portWasDefault = current === null || current.port === defaultSmtpPort(current.security);
    const given = input.password !== undefined || input.accessToken !== undefined || input.oauth2 !== undefined;
    const secret = given
      ? this.secretFields(input, 'body/smtp')
      : { authMethod: current?.authMethod ?? null, sealedSecret: current?.sealedSecret ?? null, ...(current?.oauth2 ? { oauth2: current.oauth2 } : {}) };
    return {
      host: input.host,
      port: input.port ?? (portWasDefault ? defaultSmtpPort(security) : current.port),
      security,
      username: input.username ?? current?.username ?? null,
      ...secret,
      tlsVerify: input.tlsVerify ?? current?.tlsVerify ?? true,
    };
  }

  /**
   * `authMethod`, `sealedSecret` and (OAuth2) `oauth2` from the one secret a request gives: a password,
   * an access token, or an OAuth2 grant (its refresh token and client secret sealed together).
   */
  private secretFields(input: { password?: string; accessToken?: string; oauth2?: OAuth2Input }, field: string): { authMethod: AuthMethod; sealedSecret: string; oauth2?: OAuth2SettingsRecord } {
    const { sealer } = this.options;
    if (input.password !== undefined) return { authMethod: 'password', sealedSecret: sealer.seal(input.password) };
    if (input.accessToken !== undefined) return { authMethod: 'accessToken', sealedSecret: sealer.seal(input.accessToken) };
    const oauth2 = input.oauth2!;
    if (this.options.tokens === undefined) throw new GatewayError('VALIDATION_FAILED', `${field}/oauth2 is not available in this gateway`);
    const preset = oauth2.provider === 'custom' ? undefined : PROVIDER_PRESETS[oauth2.provider];
    const tokenUrl = oauth2.tokenUrl ?? preset?.tokenUrl;
    if (tokenUrl === undefined) throw new GatewayError('VALIDATION_FAILED', `${field}/oauth2/tokenUrl is required when provider is "custom"`);
    const secrets: OAuth2Secrets = { refreshToken: oauth2.refreshToken, clientSecret: oauth2.clientSecret ?? null };
    const settings: OAuth2SettingsRecord = { provider: oauth2.provider, tokenUrl, clientId: oauth2.clientId, scope: oauth2.scope ?? preset?.scope ?? null };
    return {
      authMethod: 'oauth2',
      sealedSecret: sealer.seal(JSON.stringify(secrets)),
      oauth2: { ...settings, grantId: this.grantIdOf(settings, secrets) },
    };
  }

  /** Token URLs must be https: (or http: to a host EGRESS_ALLOW admits) and pass the egress policy: checked at save. */
  private async checkTokenUrls(record: AccountRecord): Promise<void> {
    const urls = [record.oauth2?.tokenUrl, record.smtp?.oauth2?.tokenUrl].filter((u): u is string => u !== undefined);
    for (const tokenUrl of urls) {
      let url: URL;
      try {
        url = new URL(tokenUrl);
      } catch {
        throw new GatewayError('VALIDATION_FAILED', 'oauth2/tokenUrl is not an absolute URL');
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new GatewayError('VALIDATION_FAILED', 'oauth2/tokenUrl must be an https: URL');
      // Credentials in the URL would be shown in every view of the account: they go in clientId / clientSecret.
      if (url.username !== '' || url.password !== '') {
        throw new GatewayError('VALIDATION_FAILED', 'oauth2/tokenUrl must not carry a user name or password; give them as oauth2/clientId and oauth2/clientSecret');
      }
      const target = await this.options.egress.resolve(url.hostname);
      if (url.protocol === 'http:' && !target.admitted) {
        throw new GatewayError('HOST_NOT_ALLOWED', 'oauth2/tokenUrl over plain http: is allowed only to hosts admitted by EGRESS_ALLOW; use https:');
      }
    }
  }

  /** A refresh token the provider rotated during the verifying logins of a save goes into the record saved. */
  private async keepRotatedAtSave(record: AccountRecord): Promise<void> {
    const tokens = this.options.tokens;
    if (tokens === undefined) return;
    const grants: Array<{ name: 'mail' | 'smtp'; holder: { sealedSecret: string | null; authMethod: AuthMethod | null; oauth2?: OAuth2SettingsRecord | null } }> = [
      { name: 'mail', holder: record },
      ...(record.smtp ? [{ name: 'smtp' as const, holder: record.smtp }] : []),
    ];
    for (const { name, holder } of grants) {
      if (holder.authMethod !== 'oauth2' || holder.sealedSecret === null || !holder.oauth2) continue;
      const secrets = JSON.parse(this.options.sealer.open(holder.sealedSecret)) as OAuth2Secrets;
      // A record saved before grant ids gets its id now, from the grant as it stands, before any rotation.
      holder.oauth2 = { ...holder.oauth2, grantId: this.grantIdOf(holder.oauth2, secrets) };
      const latest = await tokens.latestRefreshToken(this.grant(record.id, name, holder.oauth2, secrets));
      if (latest !== null && latest !== secrets.refreshToken) holder.sealedSecret = this.options.sealer.seal(JSON.stringify({ ...secrets, refreshToken: latest }));
    }
  }

  /**
   * The provider rotated a refresh token (src/accounts/oauth2/): the record keeps the new one, unless
   * the grant was changed meanwhile (the stored token is no longer the one the renewal replaced).
   */
  async keepRefreshToken(grant: OAuth2Grant, refreshToken: string, previous: string): Promise<void> {
    // Compare-and-set, tried again on a lost race: a client's change made meanwhile is never undone.
    for (let attempt = 0; attempt < 5; attempt++) {
      const record = await this.options.store.get(grant.accountId);
      if (record === null) return; // being created (keepRotatedAtSave) or deleted
      const next: AccountRecord = structuredClone(record);
      let changed = false;
      // Every holder of this grant (the account's and its SMTP settings' may be the same grant).
      for (const holder of [next, next.smtp]) {
        if (!holder || holder.authMethod !== 'oauth2' || holder.sealedSecret === null || !holder.oauth2) continue;
        const secrets = JSON.parse(this.options.sealer.open(holder.sealedSecret)) as OAuth2Secrets;
        if (this.grantIdOf(holder.oauth2, secrets) !== grant.grantId || secrets.refreshToken === refreshToken) continue;
        // A stored grant id names the grant whatever refresh token the record holds (renewals of one
        // grant run one at a time, so this one's is the newest); a derived one only while it is `previous`.
        if (holder.oauth2.grantId === undefined && secrets.refreshToken !== previous) continue;
        holder.oauth2 = { ...holder.oauth2, grantId: grant.grantId };
        holder.sealedSecret = this.options.sealer.seal(JSON.stringify({ ...secrets, refreshToken }));
        changed = true;
      }
      if (!changed) return; // the grant was replaced meanwhile, or its record already has the new token
      if (await this.options.store.updateIf(record, next)) {
        this.options.changes?.publish({ id: record.id, connection: false });
        return;
      }
    }
    throw new Error('the account record kept changing while the rotated refresh token was being stored');
  }

  /**
   * After a saved change (`next`) or a deletion (null): grants the account no longer holds are
   * told replaced (an old refusal turns into account.recovered, see AccessTokens.replaced) and their
   * token state goes, unless another account holds the same grant. The change is saved already: a
   * failure here is logged, and the state left expires by itself.
   */
  private async retireGrants(current: AccountRecord, next: AccountRecord | null, verified: Record<'mail' | 'smtp', boolean>): Promise<void> {
    const tokens = this.options.tokens;
    if (tokens === undefined) return;
    try {
      const kept = next === null ? new Map<string, string>() : this.grantIds(next);
      const gone = [...this.grantIds(current)].filter(([name, grantId]) => kept.get(name) !== grantId && ![...kept.values()].includes(grantId));
      if (gone.length === 0) return;
      for (const [name, grantId] of gone) {
        await tokens.replaced(current.id, grantId, kept.get(name) ?? null, verified[name as 'mail' | 'smtp']);
      }
      const others = (await this.options.store.list()).filter((r) => r.id !== current.id).flatMap((r) => [...this.grantIds(r).values()]);
      await tokens.forget(gone.map(([, grantId]) => grantId).filter((grantId) => !others.includes(grantId)));
    } catch (err) {
      this.options.log.warn({ account: current.id, err: { message: (err as Error).message } }, 'could not drop the token state of replaced OAuth2 grants');
    }
  }

  /** The OAuth2 grants a record holds of its own, by name (`mail`, `smtp`); one whose secret cannot be opened is left out. */
  private grantIds(record: AccountRecord): Map<string, string> {
    const ids = new Map<string, string>();
    for (const [name, holder] of [['mail', record], ['smtp', record.smtp]] as const) {
      if (!holder || holder.authMethod !== 'oauth2' || holder.sealedSecret === null || !holder.oauth2) continue;
      if (holder.oauth2.grantId !== undefined) ids.set(name, holder.oauth2.grantId);
      else {
        try {
          ids.set(name, this.grantIdOf(holder.oauth2, JSON.parse(this.options.sealer.open(holder.sealedSecret)) as OAuth2Secrets));
        } catch {
          // sealed under another key or damaged: it has no token state this gateway could find either
        }
      }
    }
    return ids;
  }

  /**
   * A grant's id: a keyed fingerprint of the grant as given (token URL, client, secret, refresh token,
   * scope), so the same grant given again finds its state (a refresh token rotated at a failed save),
   * and a new one starts afresh. Computed at save and stored; a rotation keeps it.
   */
  private grantIdOf(settings: OAuth2SettingsRecord, secrets: OAuth2Secrets): string {
    if (settings.grantId !== undefined) return settings.grantId;
    return `g_${this.options.sealer.fingerprint(JSON.stringify([settings.tokenUrl, settings.clientId, secrets.clientSecret, secrets.refreshToken, settings.scope]))}`;
  }

  private grant(accountId: string, name: 'mail' | 'smtp', settings: OAuth2SettingsRecord, secrets: OAuth2Secrets): OAuth2Grant {
    return {
      grantId: this.grantIdOf(settings, secrets),
      accountId,
      name,
      tokenUrl: settings.tokenUrl,
      clientId: settings.clientId,
      clientSecret: secrets.clientSecret,
      refreshToken: secrets.refreshToken,
      scope: settings.scope,
    };
  }

  /** A login's credentials from a stored secret; OAuth2 ones ask the token manager at each login. */
  private credentials(accountId: string, name: 'mail' | 'smtp', method: AuthMethod, sealedSecret: string, oauth2: OAuth2SettingsRecord | null): MailCredentials {
    const secret = this.options.sealer.open(sealedSecret);
    if (method === 'password') return { password: secret };
    if (method === 'accessToken') return { accessToken: secret };
    const tokens = this.options.tokens;
    if (tokens === undefined || oauth2 === null) throw new GatewayError('INTERNAL_ERROR', 'An OAuth2 account needs the token manager');
    const grant = this.grant(accountId, name, oauth2, JSON.parse(secret) as OAuth2Secrets);
    return {
      oauth2: {
        grantId: grant.grantId,
        // Outlook takes the POP3 XOAUTH2 response only after its `+` (Microsoft's POP3 OAuth guide).
        initialResponse: oauth2.provider !== 'microsoft',
        token: (refused) => tokens.token(grant, refused),
      },
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
    return {
      id: record.id,
      protocol: record.protocol,
      host: record.host,
      port: record.port,
      security: record.security,
      username: record.username,
      credentials: this.credentials(record.id, 'mail', record.authMethod, record.sealedSecret, record.oauth2 ?? null),
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
      oauth2: record.oauth2 ? oauth2View(record.oauth2) : null,
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
            oauth2: record.smtp.sealedSecret === null ? (record.oauth2 ? oauth2View(record.oauth2) : null) : record.smtp.oauth2 ? oauth2View(record.smtp.oauth2) : null,
            tlsVerify: record.smtp.tlsVerify,
          }
        : null,
    };
  }
}

/** The grant's settings as the API shows them: without its id (an internal name). */
function oauth2View(settings: OAuth2SettingsRecord): OAuth2View {
  return { provider: settings.provider, tokenUrl: settings.tokenUrl, clientId: settings.clientId, scope: settings.scope };
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
    const secret = 'accessToken' in account.credentials ? 'access token' : 'oauth2' in account.credentials ? 'OAuth2 grant' : 'password';
    const detail = err.message.includes('stored credentials')
      ? `The mail server refused the login with these credentials: check the username and ${secret}`
      : err.message;
    throw new GatewayError('UPSTREAM_AUTH_FAILED', `${detail}; ${consequence}`, { cause: err });
  }
}
