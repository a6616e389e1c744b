/**
 * Delivers the event log to webhooks (API.md, Webhooks; ARCHITECTURE.md, Queues). For every account
 * an enabled webhook covers:
 * - one process at a time delivers its events: the holder of the account's delivery lease
 *   (coordination/watch-leases.ts under `keys.deliveryLease`; without Redis, this process). A process
 *   that dies stops renewing, and another takes the account over within SESSION_SLOT_TTL_MS, reading
 *   first what the dead one had in flight (lanes.ts);
 * - that process retains the account (WatchDemand), so it is watched while a webhook covers it, and
 *   runs one lane per webhook covering it (lane-runner.ts), woken by the log's append hints and
 *   reading on an interval as a safety net.
 *
 * The webhooks are read again when the store's version moved (looked at every `refreshIntervalMs`,
 * one cheap read, for changes made through other processes), at once after a change through this
 * process or to the accounts (`refresh()`), and in full every FULL_REFRESH_MS as a safety net. Test deliveries
 * (`POST /v1/webhooks/{id}/test`) are one attempt, outside the lanes, recorded like any other.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { WatchLeases } from '../coordination/watch-leases.js';
import type { EventLog, MailEvent, WatchDemand } from '../events/types.js';
import type { Metrics } from '../metrics/metrics.js';
import type { EgressPolicy } from '../net/egress.js';
import type { DeliveryLanes } from './lanes.js';
import { LaneRunner, type LaneContext } from './lane-runner.js';
import { WebhookAgents, sendWebhook, type SendOutcome } from './sender.js';
import { signWebhook } from './signing.js';
import type { DeliveryRecord, DeliveryWebhook, WebhookDirectory } from './webhook-directory.js';

export const TEST_EVENT_TYPE = 'webhook.test';

/** Webhooks and accounts are read in full at least this often, whatever the version says. */
const FULL_REFRESH_MS = 60_000;

export interface WebhookDispatcherOptions {
  directory: WebhookDirectory;
  /** Every account id (for webhooks covering all accounts, and to skip ids that do not exist). */
  accountIds: () => Promise<string[]>;
  log: EventLog;
  lanes: DeliveryLanes;
  /** Delivery leases (one holder per account). */
  leases: WatchLeases;
  demand: WatchDemand;
  record: (webhookId: string, record: DeliveryRecord) => Promise<void>;
  egress: EgressPolicy;
  /** WEBHOOK_RETRY_HOURS. */
  retryHours: number;
  /** The webhook store's version is looked at this often. */
  refreshIntervalMs: number;
  /** A quiet lane reads its account's log this often even without an append hint. */
  pollIntervalMs: number;
  logger: Logger;
  metrics?: Metrics;
}

interface CoveredAccount {
  owned: boolean;
  claiming: Promise<void> | null;
  lanes: Map<string, LaneRunner>;
  releaseDemand?: () => void;
  unsubscribe?: () => void;
}

export class WebhookDispatcher {
  private webhooks = new Map<string, DeliveryWebhook>();
  private readonly accounts = new Map<string, CoveredAccount>();
  private readonly refreshTimer: NodeJS.Timeout;
  private readonly leaseTimer: NodeJS.Timeout;
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;
  /** The store's version at the last full read, and when that was. */
  private seenVersion: number | null = null;
  private lastFullReadMs = 0;
  private closed = false;
  private readonly tests = new Set<Promise<void>>();
  private readonly agents = new WebhookAgents();
  private readonly laneContext: Omit<LaneContext, 'webhook'>;

  constructor(private readonly options: WebhookDispatcherOptions) {
    this.laneContext = {
      lanes: options.lanes,
      send: (webhook, event) => this.send(webhook, event),
      record: options.record,
      disable: async (webhookId, reason) => {
        await options.directory.disable(webhookId, reason);
        options.logger.warn({ webhook: webhookId }, 'webhook disabled: its receiver answered 410 Gone');
        // Not awaited: the refresh stops the lanes of this webhook, the calling one included.
        void this.refresh();
      },
      retryHours: options.retryHours,
      pollIntervalMs: options.pollIntervalMs,
      logger: options.logger,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    };
    this.refreshTimer = setInterval(() => void this.refreshIfChanged(), options.refreshIntervalMs);
    this.refreshTimer.unref();
    this.leaseTimer = setInterval(() => void this.keepLeases(), options.leases.renewIntervalMs);
    this.leaseTimer.unref();
  }

  /**
   * Reads webhooks and accounts again and brings lanes in line: called on an interval and after a
   * change through this process. Concurrent calls share a run (and one more follows, so a change made
   * during a run is seen).
   */
  async refresh(): Promise<void> {
    if (this.closed) return;
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        try {
          // The version first: a write landing during the read moves it, and the next look reads again.
          const version = await this.options.directory.version();
          await this.applyWebhooks(await this.options.directory.enabled());
          this.seenVersion = version;
          this.lastFullReadMs = Date.now();
        } catch (err) {
          this.options.logger.warn({ err: { message: (err as Error).message } }, 'could not read the webhooks; trying again');
        }
      } while (this.refreshAgain && !this.closed);
    })();
    try {
      await this.refreshing;
    } finally {
      this.refreshing = null;
    }
  }

  private async refreshIfChanged(): Promise<void> {
    if (this.closed || this.refreshing) return;
    if (Date.now() - this.lastFullReadMs >= FULL_REFRESH_MS) return this.refresh();
    try {
      if ((await this.options.directory.version()) === this.seenVersion) return;
    } catch {
      return; // the store is unreachable: what was read last stands
    }
    await this.refresh();
  }

  /** A webhook was deleted through this process: its lanes stop and their state goes. */
  async forget(webhookId: string): Promise<void> {
    const accountIds: string[] = [];
    for (const [accountId, account] of this.accounts) {
      const lane = account.lanes.get(webhookId);
      if (lane === undefined) continue;
      account.lanes.delete(webhookId);
      accountIds.push(accountId);
      await lane.stop();
    }
    this.webhooks.delete(webhookId);
    await this.options.lanes.dropWebhook(webhookId, accountIds).catch((err: unknown) => {
      this.options.logger.warn({ webhook: webhookId, err: { message: (err as Error).message } }, 'could not drop a deleted webhook\'s lanes; they expire');
    });
    await this.refresh();
  }

  /** Sends a `webhook.test` event to the webhook now (enabled or not, whatever its filter); answers its id. */
  sendTest(webhook: DeliveryWebhook): string {
    const event = {
      id: `test_${randomUUID()}`,
      type: TEST_EVENT_TYPE,
      account: null,
      mailbox: null,
      at: new Date().toISOString(),
      webhook: webhook.id,
    };
    const done = this.sendOne(webhook, event).then(
      async (outcome) => {
        await this.options.record(webhook.id, {
          eventId: event.id,
          type: event.type,
          attempt: 1,
          at: new Date().toISOString(),
          status: outcome.ok ? 'delivered' : 'failed',
          responseStatus: outcome.status,
          error: outcome.error,
          nextAttemptAt: null,
        });
      },
      () => undefined,
    ).catch((err: unknown) => {
      this.options.logger.warn({ webhook: webhook.id, err: { message: (err as Error).message } }, 'could not keep a test delivery record');
    });
    this.tests.add(done);
    void done.finally(() => this.tests.delete(done));
    return event.id;
  }

  /** Per webhook, over this process's lanes: events read and not yet settled, and the oldest one's time. */
  laneStats(): Map<string, { backlog: number; oldestPendingAtMs: number | null }> {
    const stats = new Map<string, { backlog: number; oldestPendingAtMs: number | null }>();
    for (const account of this.accounts.values()) {
      for (const [webhookId, lane] of account.lanes) {
        const entry = stats.get(webhookId) ?? { backlog: 0, oldestPendingAtMs: null };
        entry.backlog += lane.backlog;
        if (lane.oldestPendingAtMs !== null && (entry.oldestPendingAtMs === null || lane.oldestPendingAtMs < entry.oldestPendingAtMs)) {
          entry.oldestPendingAtMs = lane.oldestPendingAtMs;
        }
        stats.set(webhookId, entry);
      }
    }
    return stats;
  }

  /** The accounts whose deliveries this process runs now (metrics, tests). */
  delivering(): string[] {
    return [...this.accounts].filter(([, account]) => account.owned).map(([id]) => id);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.refreshTimer);
    clearInterval(this.leaseTimer);
    await this.refreshing;
    await Promise.all([...this.accounts.keys()].map((id) => this.dropAccount(id)));
    await Promise.all([...this.tests]);
    this.agents.close();
  }

  private async applyWebhooks(enabled: DeliveryWebhook[]): Promise<void> {
    this.webhooks = new Map(enabled.map((webhook) => [webhook.id, webhook]));
    const existing = enabled.length === 0 ? [] : await this.options.accountIds();
    const covered = new Map<string, string[]>();
    for (const accountId of existing) {
      const ids = enabled.filter((webhook) => webhook.accounts === null || webhook.accounts.has(accountId)).map((webhook) => webhook.id);
      if (ids.length > 0) covered.set(accountId, ids);
    }
    for (const accountId of [...this.accounts.keys()]) if (!covered.has(accountId)) await this.dropAccount(accountId);
    for (const [accountId, webhookIds] of covered) {
      let account = this.accounts.get(accountId);
      if (account === undefined) {
        this.accounts.set(accountId, (account = { owned: false, claiming: null, lanes: new Map() }));
        void this.claim(accountId);
      } else if (account.owned) {
        await this.syncLanes(accountId, account, webhookIds);
      }
    }
    this.options.metrics?.webhookAccounts.set(this.delivering().length);
  }

  /** Starts the lanes of webhooks now covering the account, stops those of webhooks that no longer do. */
  private async syncLanes(accountId: string, account: CoveredAccount, webhookIds: string[]): Promise<void> {
    const wanted = new Set(webhookIds);
    for (const [webhookId, lane] of account.lanes) {
      if (wanted.has(webhookId)) continue;
      account.lanes.delete(webhookId);
      await lane.stop();
    }
    for (const webhookId of wanted) {
      if (account.lanes.has(webhookId)) continue;
      account.lanes.set(
        webhookId,
        new LaneRunner({ webhookId, accountId }, { ...this.laneContext, webhook: () => this.webhooks.get(webhookId) }),
      );
    }
  }

  private coveringWebhooks(accountId: string): string[] {
    return [...this.webhooks.values()].filter((w) => w.accounts === null || w.accounts.has(accountId)).map((w) => w.id);
  }

  /** Takes the account's delivery lease if nobody holds it, and then starts delivering it. */
  private async claim(accountId: string): Promise<void> {
    const account = this.accounts.get(accountId);
    if (account === undefined || account.owned || account.claiming || this.closed) return;
    account.claiming = (async () => {
      let acquired: boolean;
      try {
        acquired = await this.options.leases.tryAcquire(accountId);
      } catch (err) {
        this.options.logger.warn({ account: accountId, err: { message: (err as Error).message } }, 'could not take a delivery lease; retrying');
        return;
      }
      if (!acquired) return;
      if (this.closed || this.accounts.get(accountId) !== account) {
        await this.options.leases.release(accountId);
        return;
      }
      account.owned = true;
      account.releaseDemand = this.options.demand.retain(accountId);
      account.unsubscribe = this.options.log.onAppend(accountId, () => {
        for (const lane of account.lanes.values()) lane.wake();
      });
      await this.syncLanes(accountId, account, this.coveringWebhooks(accountId));
      this.options.metrics?.webhookAccounts.set(this.delivering().length);
    })();
    try {
      await account.claiming;
    } finally {
      account.claiming = null;
    }
  }

  /** Renews the leases held; stops delivering where one was lost; tries to take those nobody holds. */
  private async keepLeases(): Promise<void> {
    if (this.closed) return;
    await Promise.all(
      [...this.accounts].map(async ([accountId, account]) => {
        if (!account.owned) return this.claim(accountId);
        let kept = false;
        try {
          kept = await this.options.leases.renew(accountId);
        } catch (err) {
          this.options.logger.warn({ account: accountId, err: { message: (err as Error).message } }, 'could not renew a delivery lease');
          return;
        }
        if (!kept) {
          this.options.logger.warn({ account: accountId }, 'delivery lease lost to another process; stopping its deliveries here');
          await this.stopDelivering(account);
        }
      }),
    );
  }

  private async dropAccount(accountId: string): Promise<void> {
    const account = this.accounts.get(accountId);
    if (account === undefined) return;
    this.accounts.delete(accountId);
    await account.claiming;
    const owned = account.owned;
    await this.stopDelivering(account);
    if (owned) await this.options.leases.release(accountId);
  }

  private async stopDelivering(account: CoveredAccount): Promise<void> {
    account.owned = false;
    account.unsubscribe?.();
    account.releaseDemand?.();
    delete account.unsubscribe;
    delete account.releaseDemand;
    const lanes = [...account.lanes.values()];
    account.lanes.clear();
    await Promise.all(lanes.map((lane) => lane.stop()));
    this.options.metrics?.webhookAccounts.set(this.delivering().length);
  }

  private send(webhook: DeliveryWebhook, event: MailEvent): Promise<SendOutcome> {
    return this.sendOne(webhook, event);
  }

  /** One signed POST of the event's JSON (Standard Webhooks headers, signing.ts). */
  private sendOne(webhook: DeliveryWebhook, event: { id: string }): Promise<SendOutcome> {
    const body = JSON.stringify(event);
    const headers = { ...signWebhook(webhook.secret, event.id, Date.now() / 1000, body) };
    return sendWebhook(webhook.url, body, headers, { egress: this.options.egress, agents: this.agents });
  }
}
