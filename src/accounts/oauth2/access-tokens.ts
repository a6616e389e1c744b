/**
 * Access tokens for OAuth2 accounts (API.md, "OAuth2 accounts"; decision 0017): obtained from the
 * refresh token at first use, kept sealed with their expiry (token-state.ts), renewed when less than
 * `renewAheadMs` (60 s) remain, and renewed at once when a server refused the current one.
 *
 * One renewal per grant at a time, across processes: in this process concurrent callers share one
 * promise; across processes the one that takes the renewal lease asks the provider and stores the
 * result, the others wait for it (reading the shared record every 50 ms, within the endpoint's time
 * bound). A renewal that failed (the endpoint erred or did not answer in time) answers its error to
 * the grant's renewals for 5 s, waiting or new, in every process: a provider that is down is asked
 * once per 5 s, not once per waiting process one after another. A rotated refresh token is kept in the shared record at once (every process renews with the
 * newest) and given to `keepRefreshToken` for the account record.
 *
 * A grant the provider refuses (`invalid_grant`) is not asked again before its back-off has passed
 * (1 min, doubling to 1 h): until then every login fails at once with the refusal, so a revoked app
 * never becomes a stream of requests to the provider. `onRefused` / `onRecovered` say when a grant
 * started and stopped being refused (`account.error`, `account.recovered`).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { GatewayError } from '../../errors.js';
import type { EgressPolicy } from '../../net/egress.js';
import type { Sealer } from '../sealing.js';
import { GrantRefused, refreshAccessToken, type IssuedAccessToken, type RefreshGrant } from './token-endpoint.js';
import type { RenewalFailure, TokenRecord, TokenStateStore } from './token-state.js';

/**
 * A refresh grant, its id (what its tokens are kept under, `OAuth2SettingsRecord.grantId`) and whose
 * it is: `name` tells the account's own (`mail`) from its SMTP settings' own (`smtp`).
 */
export interface OAuth2Grant extends RefreshGrant {
  grantId: string;
  accountId: string;
  name: 'mail' | 'smtp';
}

export interface AccessTokensOptions {
  state: TokenStateStore;
  sealer: Sealer;
  egress: EgressPolicy;
  /** UPSTREAM_TIMEOUT_MS: bounds each request to the token endpoint. */
  timeoutMs: number;
  log: Logger;
  /** Stores a rotated refresh token in the account record in place of `previous` (which no longer works). */
  keepRefreshToken(grant: OAuth2Grant, refreshToken: string, previous: string): Promise<void>;
  /** A grant of the account started being refused (`account.error`). */
  onRefused?(accountId: string, detail: string): void;
  /** It stopped: a renewal succeeded, or a verified change replaced it (`account.recovered`). */
  onRecovered?(accountId: string): void;
  /** Renewals asked of a provider, by outcome (`ok`, `refused`, `failed`). */
  onRenewal?(outcome: 'ok' | 'refused' | 'failed'): void;
  renewAheadMs?: number;
  refusalBackoffMs?: { min: number; max: number };
  /** How long a failed renewal's error answers the grant's renewals (default 5 s). */
  failureSharedMs?: number;
  now?: () => number;
  /** The exchange with the token endpoint (tests replace it). */
  refresh?: (grant: RefreshGrant) => Promise<IssuedAccessToken>;
}

const RENEW_AHEAD_MS = 60_000;
const REFUSAL_BACKOFF = { min: 60_000, max: 3_600_000 };
const WAIT_STEP_MS = 50;
const HOLD_REFRESH_MS = 3_600_000;
const HELD_KEPT = 100_000;
/** How long a failed renewal's error is answered to the renewals that waited for it, and to new ones. */
const FAILURE_SHARED_MS = 5_000;
/** A refusal record outlives its back-off so that the next one backs off longer. */
const REFUSAL_MEMORY_MS = 6 * 3_600_000;

export class AccessTokens {
  private readonly running = new Map<string, Promise<string>>();
  /** When this process last noted an account as a holder of a grant (see hold). */
  private readonly held = new Map<string, number>();
  private readonly owner = randomUUID();
  private readonly now: () => number;
  private readonly renewAheadMs: number;

  constructor(private readonly options: AccessTokensOptions) {
    this.now = options.now ?? Date.now;
    this.renewAheadMs = options.renewAheadMs ?? RENEW_AHEAD_MS;
  }

  /**
   * A token to log in with: the kept one while more than 60 s of it remain, else a renewed one.
   * `refused`: the token a server just refused; a different one is answered (renewing if need be),
   * except when `refused` was itself got because a server refused its predecessor: then the refusal
   * is not about the token (a wrong username, a server that takes no OAuth2), and `refused` comes
   * back, so the caller gives up instead of each failed login costing a request to the provider.
   */
  async token(grant: OAuth2Grant, refused?: string): Promise<string> {
    const key = grant.grantId;
    const pending = this.running.get(key);
    // Concurrent callers share one look (and at most one renewal); one that was refused the shared
    // answer looks again once it is done.
    if (pending !== undefined) return pending.then((shared) => (shared !== refused ? shared : this.token(grant, refused)));
    const look = this.look(grant, refused).finally(() => {
      if (this.running.get(key) === look) this.running.delete(key);
    });
    this.running.set(key, look);
    return look;
  }

  private async look(grant: OAuth2Grant, refused: string | undefined): Promise<string> {
    const [record] = await Promise.all([this.read(grant), this.hold(grant)]);
    const kept = this.usable(record, refused);
    if (kept !== null) return kept;
    const refusal = this.activeRefusal(record);
    if (refusal !== null) throw refusal;
    return this.renew(grant, refused);
  }

  /** The newest refresh token of a grant, when a renewal rotated it (create keeps it in the record it saves). */
  async latestRefreshToken(grant: OAuth2Grant): Promise<string | null> {
    const record = await this.read(grant);
    return record?.refreshToken === undefined ? null : this.options.sealer.open(record.refreshToken);
  }

  /** Grants no account holds any more: their kept tokens and refusals go (in every process). */
  async forget(grantIds: readonly string[]): Promise<void> {
    await Promise.all(grantIds.map((grantId) => this.options.state.forget(grantId)));
  }

  /**
   * A saved change replaced the grant `previousGrantId` of an account (by `nextGrantId`, or by a
   * password or fixed token: null). When the old grant stood refused the account recovers: at once
   * when the change was verified by a login, else at the new grant's first renewal (the refusal is
   * carried over as spent, so that renewal tells the recovery, or a refusal without a second error).
   */
  async replaced(accountId: string, previousGrantId: string, nextGrantId: string | null, verified: boolean): Promise<void> {
    const { state } = this.options;
    const previous = await state.read(previousGrantId);
    if (previous?.refusal === undefined) return;
    if (verified) {
      this.options.onRecovered?.(accountId);
      return;
    }
    if (nextGrantId === null) return;
    const next = (await state.read(nextGrantId)) ?? {};
    if (next.refusal !== undefined) return;
    await state.write(nextGrantId, { ...next, refusal: { ...previous.refusal, untilMs: 0, count: 0 } }, this.now() + REFUSAL_MEMORY_MS);
  }

  private async renew(grant: OAuth2Grant, refused: string | undefined): Promise<string> {
    const { state } = this.options;
    const leaseMs = this.options.timeoutMs + 5_000;
    const deadline = this.now() + leaseMs;
    for (;;) {
      const lease = await state.lease(grant.grantId, this.owner, leaseMs);
      if (lease.taken) {
        let failure: RenewalFailure | null = null;
        try {
          // Another process may have renewed between the read and the lease.
          const record = await this.read(grant);
          const kept = this.usable(record, refused);
          if (kept !== null) return kept;
          const refusal = this.activeRefusal(record);
          if (refusal !== null) throw refusal;
          return await this.exchange(grant, record, refused !== undefined);
        } catch (err) {
          failure = renewalFailure(err);
          throw err;
        } finally {
          // A failure is shared for a moment (the waiting renewals answer it); else the lease goes.
          const settle = failure !== null ? state.fail(grant.grantId, this.owner, failure, this.options.failureSharedMs ?? FAILURE_SHARED_MS) : state.release(grant.grantId, this.owner);
          await settle.catch(() => undefined);
        }
      }
      if (lease.failure !== null) throw new GatewayError(lease.failure.code, lease.failure.detail);
      // Another process renews: its result is shared through the record.
      await new Promise((resolve) => setTimeout(resolve, WAIT_STEP_MS));
      const record = await this.read(grant);
      const kept = this.usable(record, refused);
      if (kept !== null) return kept;
      const refusal = this.activeRefusal(record);
      if (refusal !== null) throw refusal;
      if (this.now() > deadline) {
        throw new GatewayError('UPSTREAM_TIMEOUT', `The renewal of this account's OAuth2 access token did not finish within ${leaseMs} ms`);
      }
    }
  }

  /** Asks the provider, and shares what it answered. */
  private async exchange(grant: OAuth2Grant, record: TokenRecord | null, afterRefusal: boolean): Promise<string> {
    const { state, sealer } = this.options;
    // The newest refresh token: a rotation by any process is in the shared record before the account's.
    const refreshToken = record?.refreshToken !== undefined ? sealer.open(record.refreshToken) : grant.refreshToken;
    const refresh = this.options.refresh ?? ((g: RefreshGrant) => refreshAccessToken(g, { egress: this.options.egress, timeoutMs: this.options.timeoutMs, now: this.now }));
    let issued: IssuedAccessToken;
    try {
      issued = await refresh({ ...grant, refreshToken });
    } catch (err) {
      if (!(err instanceof GrantRefused)) {
        this.options.onRenewal?.('failed');
        throw err;
      }
      this.options.onRenewal?.('refused');
      const count = (record?.refusal?.count ?? 0) + 1;
      const backoff = this.options.refusalBackoffMs ?? REFUSAL_BACKOFF;
      const untilMs = this.now() + Math.min(backoff.max, backoff.min * 2 ** (count - 1));
      const refusedRecord: TokenRecord = { refusal: { detail: err.message, untilMs, count }, ...(record?.refreshToken !== undefined ? { refreshToken: record.refreshToken } : {}) };
      await state.write(grant.grantId, refusedRecord, untilMs + REFUSAL_MEMORY_MS);
      this.options.log.warn({ account: grant.accountId, grant: grant.name, oauthError: err.oauthError, refusals: count }, 'the OAuth2 provider refused the refresh token');
      if (record?.refusal === undefined) this.options.onRefused?.(grant.accountId, err.message);
      throw err;
    }
    this.options.onRenewal?.('ok');
    const latest = issued.refreshToken ?? refreshToken;
    const next: TokenRecord = {
      token: { sealed: sealer.seal(issued.accessToken), expiresAtMs: issued.expiresAtMs, ...(afterRefusal ? { afterRefusal } : {}) },
      ...(latest !== grant.refreshToken ? { refreshToken: sealer.seal(latest) } : {}),
    };
    try {
      // Kept past the token's expiry while it holds a rotated refresh token the account record may still lack.
      await state.write(grant.grantId, next, next.refreshToken === undefined ? issued.expiresAtMs : issued.expiresAtMs + REFUSAL_MEMORY_MS);
    } finally {
      // A rotated refresh token reaches the account records even if the shared record could not be written.
      if (issued.refreshToken !== null) await this.keepRotated(grant, issued.refreshToken, refreshToken);
    }
    this.options.log.info({ account: grant.accountId, grant: grant.name, rotated: issued.refreshToken !== null, expiresInS: Math.round((issued.expiresAtMs - this.now()) / 1000) }, 'OAuth2 access token renewed');
    if (record?.refusal !== undefined) this.options.onRecovered?.(grant.accountId);
    return issued.accessToken;
  }

  /** Every account that holds the grant gets the rotated refresh token in its record. */
  private async keepRotated(grant: OAuth2Grant, refreshToken: string, previous: string): Promise<void> {
    const holders = new Set([grant.accountId, ...(await this.options.state.holders(grant.grantId).catch(() => []))]);
    for (const accountId of holders) {
      await this.options.keepRefreshToken({ ...grant, accountId }, refreshToken, previous).catch((err: unknown) => {
        this.options.log.warn({ account: accountId, err: { message: (err as Error).message } }, 'could not store the rotated OAuth2 refresh token in the account record');
      });
    }
  }

  /**
   * Notes the account as a holder of the grant, once an hour per process at most (the note lasts a
   * week): a POP3 account logs in for every request, and a note per login would be a Redis round trip each.
   */
  private async hold(grant: OAuth2Grant): Promise<void> {
    const key = `${grant.grantId}\0${grant.accountId}`;
    const last = this.held.get(key);
    if (last !== undefined && this.now() - last < HOLD_REFRESH_MS) return;
    await this.options.state.hold(grant.grantId, grant.accountId);
    if (this.held.size >= HELD_KEPT) this.held.clear();
    this.held.set(key, this.now());
  }

  private async read(grant: OAuth2Grant): Promise<TokenRecord | null> {
    return this.options.state.read(grant.grantId);
  }

  private usable(record: TokenRecord | null, refused: string | undefined): string | null {
    if (record?.token === undefined || record.token.expiresAtMs - this.now() <= this.renewAheadMs) return null;
    const token = this.options.sealer.open(record.token.sealed);
    if (token !== refused) return token;
    return record.token.afterRefusal === true ? token : null;
  }

  private activeRefusal(record: TokenRecord | null): GrantRefused | null {
    if (record?.refusal === undefined || record.refusal.untilMs <= this.now()) return null;
    const at = new Date(record.refusal.untilMs).toISOString();
    return new GrantRefused('invalid_grant', `${record.refusal.detail} (not asked again before ${at})`);
  }
}

/** The token endpoint's own failure, shared with its code; anything else (a refusal, our own faults) is not. */
function renewalFailure(err: unknown): RenewalFailure | null {
  if (!(err instanceof GatewayError) || err instanceof GrantRefused) return null;
  if (err.code === 'UPSTREAM_TIMEOUT' || err.code === 'UPSTREAM_ERROR' || err.code === 'HOST_NOT_ALLOWED') return { code: err.code, detail: err.message };
  return null;
}
