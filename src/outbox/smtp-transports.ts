/**
 * SMTP submission with nodemailer: one pooled transport per account and settings, each connection
 * dialled through the egress policy (the checked address, the host name only as TLS SNI and for
 * certificate checks), `starttls` never downgraded (`requireTLS`), every step bounded.
 *
 * What a submission's replies mean for each recipient is `smtp-outcome.ts`'s job; this module only
 * connects, sends and reports nodemailer's answer or error.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import nodemailer, { type NodemailerError, type SMTPSentMessageInfo, type Transporter } from 'nodemailer';
import type { SMTPPoolOptions } from 'nodemailer/lib/smtp-pool';
import type { Logger } from 'pino';
import type { Security } from '../accounts/types.js';
import type { MailCredentials, OAuth2Login } from '../mail/account.js';
import type { EgressPolicy } from '../net/egress.js';
import { isGatewayError } from '../errors.js';
import { CarriedError, carry, carryTokenFailure, smtpLoginError } from './smtp-outcome.js';

/** What a transport needs to reach one account's SMTP server: settings with the secret unsealed. */
export interface SmtpAccount {
  accountId: string;
  host: string;
  port: number;
  security: Security;
  username: string;
  credentials: MailCredentials;
  tlsVerify: boolean;
}

export interface Submission {
  envelope: { from: string; to: string[] };
  /** The message as it is sent: whole, or read from the outbox store as DATA goes (large messages). */
  raw: Buffer | Readable;
  /** The same bytes read afresh, for a second try when `raw` is a stream (a login renewed, see send). */
  reopen?: () => Promise<Buffer | Readable | null>;
}

export interface SmtpTransportsOptions {
  egress: EgressPolicy;
  /** Bound on connecting (DNS, TCP, TLS, greeting) and on each SMTP step, DATA included. */
  timeoutMs: number;
  maxConnectionsPerAccount: number;
  log: Logger;
}

interface Pooled {
  fingerprint: string;
  transport: Transporter<SMTPSentMessageInfo>;
  login: OAuth2LoginState | null;
  /**
   * The account as the last send gave it: new connections log in with its credentials, so a pool
   * outliving a rotation of the grant's refresh token renews with the newest one.
   */
  current: { account: SmtpAccount };
}

/** What an OAuth2 login told: the token it last gave nodemailer, and whether nodemailer asked to renew it. */
interface OAuth2LoginState {
  last: string | undefined;
  renewed: boolean;
}

/** A refusal of the login itself by the server (not of our token request, which is carried). */
const isRefusedLogin = (err: unknown): boolean => !(err instanceof CarriedError) && (err as NodemailerError | null)?.code === 'EAUTH';

/** Nodemailer's idle connections close after this (its default is 4 minutes). */
const IDLE_TIMEOUT_MS = 60_000;

export class SmtpTransports {
  private readonly pools = new Map<string, Pooled>();

  constructor(private readonly options: SmtpTransportsOptions) {}

  /** Sends one message over the account's pool; rejects with nodemailer's error (see smtp-outcome.ts). */
  async send(account: SmtpAccount, submission: Submission): Promise<SMTPSentMessageInfo> {
    const pooled = this.pool(account);
    const attempt = (raw: Buffer | Readable): Promise<SMTPSentMessageInfo> => pooled.transport.sendMail({ envelope: submission.envelope, raw });
    if (pooled.login === null) return attempt(submission.raw);
    pooled.login.renewed = false;
    try {
      return await attempt(submission.raw);
    } catch (err) {
      // Refused at AUTH, before MAIL FROM: nothing was sent, so one more try with a renewed token is safe
      // (with the bytes read afresh when they were a stream).
      if (!Buffer.isBuffer(submission.raw) && submission.reopen === undefined) throw err;
      if (!(await this.renewAfterRefusal(account, pooled.login, err))) throw err;
      if (!Buffer.isBuffer(submission.raw)) submission.raw.destroy();
      const again = Buffer.isBuffer(submission.raw) ? submission.raw : await submission.reopen!();
      if (again === null) throw err;
      return attempt(again);
    }
  }

  /** Connects and logs in once, on a connection of its own (the `verify` of account settings). */
  async verify(account: SmtpAccount): Promise<void> {
    const login = 'oauth2' in account.credentials ? { last: undefined, renewed: false } : null;
    const once = async (): Promise<void> => {
      const transport = nodemailer.createTransport(this.transportOptions(account, false, login));
      try {
        await transport.verify();
      } finally {
        transport.close();
      }
    };
    try {
      try {
        await once();
      } catch (err) {
        if (login === null || !(await this.renewAfterRefusal(account, login, err))) throw err;
        await once();
      }
    } catch (err) {
      throw smtpLoginError(err);
    }
  }

  /**
   * A server that refuses an OAuth2 login outright (535, as Microsoft 365 does) gives nodemailer no
   * 334 challenge to renew on: the token it refused is renewed here, once, and the caller tries again
   * (API.md: a login refused with a token that should be valid renews once and retries).
   */
  private async renewAfterRefusal(account: SmtpAccount, login: OAuth2LoginState, err: unknown): Promise<boolean> {
    if (!('oauth2' in account.credentials) || !isRefusedLogin(err) || login.renewed || login.last === undefined) return false;
    try {
      return (await account.credentials.oauth2.token(login.last)) !== login.last;
    } catch (renewal) {
      // The renewal's own answer says more than the refused login: a refused grant, an endpoint down.
      if (isGatewayError(renewal)) throw renewal;
      return false;
    }
  }

  /** Closes the account's pooled connections (its settings changed, or it was deleted). */
  drop(accountId: string): void {
    const pooled = this.pools.get(accountId);
    if (pooled === undefined) return;
    this.pools.delete(accountId);
    pooled.transport.close();
  }

  close(): void {
    for (const id of [...this.pools.keys()]) this.drop(id);
  }

  private pool(account: SmtpAccount): Pooled {
    // An OAuth2 grant is one login whatever token it gives now (its renewals do not need a new pool).
    const login = 'oauth2' in account.credentials ? { oauth2: account.credentials.oauth2.grantId } : account.credentials;
    const fingerprint = JSON.stringify([account.host, account.port, account.security, account.username, login, account.tlsVerify]);
    const current = this.pools.get(account.accountId);
    if (current?.fingerprint === fingerprint) {
      current.current.account = account;
      return current;
    }
    // New settings: connections logged in with the old ones are never used again.
    if (current !== undefined) this.drop(account.accountId);
    const state = 'oauth2' in account.credentials ? { last: undefined, renewed: false } : null;
    const latest = { account };
    const transport = nodemailer.createTransport(this.transportOptions(account, true, state, latest)) as Transporter<SMTPSentMessageInfo>;
    const pooled = { fingerprint, transport, login: state, current: latest };
    this.pools.set(account.accountId, pooled);
    return pooled;
  }

  private transportOptions(account: SmtpAccount, pool: boolean, login: OAuth2LoginState | null, latest: { account: SmtpAccount } = { account }): SMTPPoolOptions {
    const { timeoutMs } = this.options;
    return {
      pool,
      maxConnections: this.options.maxConnectionsPerAccount,
      idleTimeout: IDLE_TIMEOUT_MS,
      // The pool may put a message back on its queue when a connection closes mid-send; the outbox
      // decides about retries itself (with its own back-off and the recipients already accepted).
      maxRequeues: 0,
      host: account.host,
      port: account.port,
      // RFC 8314: implicit TLS (465) or STARTTLS that must succeed (587); `none` only where configured.
      secure: account.security === 'tls',
      requireTLS: account.security === 'starttls',
      ignoreTLS: account.security === 'none',
      tls: { rejectUnauthorized: account.tlsVerify },
      auth: this.auth(latest, login),
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      dnsTimeout: timeoutMs,
      logger: false,
      debug: false,
      getSocket: (_options, callback) => {
        this.dial(account, timeoutMs).then(
          (socket) => callback(null, { connection: socket }),
          (err: unknown) => callback(carry(err)),
        );
      },
    };
  }

  /**
   * A password, a fixed token, or an OAuth2 grant: each new connection asks for a token at its AUTH
   * (nodemailer's provisionCallback), so a pooled transport never logs in with a token older than the
   * grant's current one; a refused AUTH asks again with `renew` and nodemailer tries once more.
   */
  private auth(latest: { account: SmtpAccount }, login: OAuth2LoginState | null): SMTPPoolOptions['auth'] {
    const { account } = latest;
    const { credentials } = account;
    if ('password' in credentials) return { user: account.username, pass: credentials.password };
    if ('accessToken' in credentials) return { type: 'OAuth2', user: account.username, accessToken: credentials.accessToken };
    const state = login ?? { last: undefined, renewed: false };
    // The grant as the latest send gave it (same grant id: the pool's fingerprint), with its newest refresh token.
    const oauth2 = (): OAuth2Login => ('oauth2' in latest.account.credentials ? latest.account.credentials.oauth2 : credentials.oauth2);
    return {
      type: 'OAuth2',
      user: account.username,
      provisionCallback: (_user, renew, callback) => {
        if (renew) state.renewed = true;
        oauth2().token(renew ? state.last : undefined).then(
          (token) => {
            state.last = token;
            callback(null, token);
          },
          (err: unknown) => callback(carryTokenFailure(err)),
        );
      },
    };
  }

  /** Egress check at every connection, then a TCP connection to the address that was checked. */
  private async dial(account: SmtpAccount, timeoutMs: number): Promise<Socket> {
    const target = await this.options.egress.resolve(account.host);
    return new Promise<Socket>((resolve, reject) => {
      const socket = netConnect({ host: target.address, port: account.port, family: target.family });
      const fail = (err: Error): void => {
        socket.destroy();
        reject(err);
      };
      socket.setTimeout(timeoutMs, () => fail(Object.assign(new Error(`connecting to the SMTP server timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }) as NodemailerError));
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.removeListener('error', fail);
        socket.setTimeout(0);
        resolve(socket);
      });
    });
  }
}
