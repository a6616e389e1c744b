/**
 * `account.error` / `account.recovered` for a watcher (API.md, Events): the first failed attempt
 * to reach or log in to the server stores one `account.error` (again only when the cause changes),
 * the first success after it one `account.recovered`. And the back-off between attempts: capped
 * exponential with jitter, so a dead server or a wrong password never becomes a hot loop, and many
 * watchers failing together do not retry together.
 */
import type { Logger } from 'pino';
import { GrantRefused } from '../accounts/oauth2/token-endpoint.js';
import type { GatewayError } from '../errors.js';
import type { WatchSink } from './watch.js';

export class AccountHealth {
  private failing: string | null = null;
  private delayMs = 0;

  constructor(
    private readonly accountId: string,
    private readonly sink: WatchSink,
    private readonly log: Logger,
    private readonly retryMinMs = 1000,
    private readonly retryMaxMs = 60_000,
  ) {}

  /** How long to wait before the next attempt (0 after a success). */
  nextDelayMs(): number {
    return this.delayMs === 0 ? 0 : Math.round(this.delayMs * (0.8 + Math.random() * 0.4));
  }

  /** An attempt failed: back off further, and store `account.error` if this cause is new. */
  async failed(err: GatewayError): Promise<void> {
    this.delayMs = this.delayMs === 0 ? this.retryMinMs : Math.min(this.retryMaxMs, this.delayMs * 2);
    this.sink.onReconnect?.(err.code);
    this.log.warn({ account: this.accountId, code: err.code, err: { message: err.message } }, 'watcher cannot reach the mail server');
    // A refused OAuth2 grant is told once for the account by the token manager (src/accounts/oauth2/),
    // whoever met it first; the watcher only backs off.
    if (err instanceof GrantRefused) return;
    if (this.failing === err.code) return;
    this.failing = err.code;
    await this.record('account.error', err.code, err.message);
  }

  /** An attempt worked: no more back-off, and `account.recovered` if an error was stored. */
  async succeeded(): Promise<void> {
    this.delayMs = 0;
    if (this.failing === null) return;
    this.failing = null;
    await this.record('account.recovered', 'OK', 'The gateway reaches and logs in to the mail server again');
  }

  /** A session that worked broke: try again at once, but back off if it keeps breaking. */
  dropped(code: string, lastedMs: number): void {
    this.sink.onReconnect?.(code);
    this.delayMs = lastedMs > this.retryMaxMs ? 0 : Math.min(this.retryMaxMs, Math.max(this.retryMinMs, this.delayMs * 2));
  }

  private async record(type: 'account.error' | 'account.recovered', code: string, detail: string): Promise<void> {
    try {
      await this.sink.record([{ type, mailbox: null, fields: { code, detail } }], []);
    } catch (err) {
      this.log.warn({ account: this.accountId, err: { message: (err as Error).message } }, 'could not store an account event');
    }
  }
}
