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
import type { EventLog, WatchDemand } from '../events/types.js';
import type { Metrics } from '../metrics/metrics.js';
import type { EgressPolicy } from '../net/egress.js';
import { SerialQueue } from '../util/serial-queue.js';
import type { DeliveryLanes } from './lanes.js';
import { LaneRunner, type LaneContext } from './lane-runner.js';
import { WebhookAgents, sendWebhook, type SendOutcome } from './sender.js';
import { signWebhook, type SignedHeaders } from './signing.js';
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
  id: string;
  /** This process holds the account's delivery lease. */
  owned: boolean;
  /**
   * Until when the lease is surely held: when the last take or renewal that succeeded was sent, plus
   * the lease's TTL less a margin. Past it, lanes hold still (a renewal that keeps failing may mean
   * another process has the account by now), and a renewal that succeeds again lets them go on.
   */
  validUntilMs: number;
  /** Out of the dispatcher's map: whatever is queued for it only winds it down. */
  dropped: boolean;
  lanes: Map<string, LaneRunner>;
  /** Claims, lane changes, renewals and the stop of one account run one after another. */
  queue: SerialQueue;
  releaseDemand?: () => void;
  unsubscribe?: () => void;
}

/**
 * A lease is trusted for its TTL less a margin: at least a sixth of it (clock drift, the renewal's own
 * round trip), and room for one whole attempt (the sender's 10 s), as far as half the TTL allows, so
 * an attempt begun in time ends before a successor may start.
 */
const LEASE_MARGIN_SHARE = 1 / 6;
const ATTEMPT_MS = 10_000;

export class WebhookDispatcher {
  private webhooks = new Map<string, DeliveryWebhook>();
  private readonly accounts = new Map<string, CoveredAccount>();
  private readonly refreshTimer: NodeJS.Timeout;
  private readonly leaseTimer: NodeJS.Timeout;
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;
  private keeping = false;
  /** Moves with every forget(): a refresh whose reads began before one reads again. */
  private generation = 0;
  /** forget() and forgetAccount() calls still winding down (close waits for them). */
  private readonly forgetting = new Set<Promise<void>>();
  /** The store's version at the last full read, and when that was. */
  private seenVersion: number | null = null;
  private lastFullReadMs = 0;
  private closed = false;
  private readonly tests = new Set<Promise<void>>();
  private readonly agents = new WebhookAgents();
  private readonly laneContext: Omit<LaneContext, 'webhook' | 'mayDeliver'>;

  constructor(private readonly options: WebhookDispatcherOptions) {
    this.laneContext = {
      lanes: options.lanes,
      send: (webhook, event) => this.sendOne(webhook, event),
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
    const run = (async () => {
      try {
        do {
          this.refreshAgain = false;
          try {
            // The version first: a write landing during the read moves it, and the next look reads again.
            const generation = this.generation;
            const version = await this.options.directory.version();
            const enabled = await this.options.directory.enabled();
            const accountIds = enabled.length === 0 ? [] : await this.options.accountIds();
            if (this.closed) return;
            // A webhook or account forgotten while this read ran may still be in it: read again,
            // or it would come back (with no lane state left, from its start).
            if (generation !== this.generation) {
              this.refreshAgain = true;
              continue;
            }
            await this.apply(enabled, accountIds);
            this.seenVersion = version;
            this.lastFullReadMs = Date.now();
          } catch (err) {
            this.options.logger.warn({ err: { message: (err as Error).message } }, 'could not read the webhooks; trying again');
          }
        } while (this.refreshAgain && !this.closed);
      } finally {
        // In the same step as the loop's last check: a call arriving later starts a run of its own.
        this.refreshing = null;
      }
    })();
    this.refreshing = run;
    await run;
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

  /** A webhook was deleted through this process: its lanes stop at once and their state goes. */
  forget(webhookId: string): Promise<void> {
    return this.tracked(this.forgetWebhook(webhookId));
  }

  private async forgetWebhook(webhookId: string): Promise<void> {
    this.generation++;
    // Out of the map first: no lane of it starts again while the others stop.
    const webhook = this.webhooks.get(webhookId);
    this.webhooks.delete(webhookId);
    const covered = [...this.accounts.values()].filter((account) => account.lanes.has(webhookId));
    await Promise.all(
      covered.map((account) =>
        account.queue.run(async () => {
          const lane = account.lanes.get(webhookId);
          account.lanes.delete(webhookId);
          await lane?.stop();
        }),
      ),
    );
    // Every account it covered, not only those delivered here: other processes' lanes leave state too.
    let accountIds = covered.map((account) => account.id);
    if (webhook !== undefined) {
      const all = await this.options.accountIds().catch(() => accountIds);
      accountIds = [...new Set([...accountIds, ...all.filter((id) => webhook.accounts === null || webhook.accounts.has(id))])];
    }
    await this.options.lanes.dropWebhook(webhookId, accountIds).catch((err: unknown) => {
      this.options.logger.warn({ webhook: webhookId, err: { message: (err as Error).message } }, 'could not drop a deleted webhook\'s lanes; they expire');
    });
    await this.refresh();
  }

  /**
   * An account was deleted through this process: its lanes stop before its log goes (so none reads
   * it again), and their state goes. Other processes stop theirs when they hear of the deletion.
   */
  forgetAccount(accountId: string): Promise<void> {
    return this.tracked(this.forgetAccountNow(accountId));
  }

  private async forgetAccountNow(accountId: string): Promise<void> {
    this.generation++;
    await this.dropAccount(accountId);
    await this.options.lanes.dropAccount(accountId).catch((err: unknown) => {
      this.options.logger.warn({ account: accountId, err: { message: (err as Error).message } }, 'could not drop a deleted account\'s lanes; they expire');
    });
  }

  /**
   * Sends a `webhook.test` event to the webhook now (enabled or not, whatever its filter); answers its
   * id. One attempt, no retry; a 410 to it is recorded and disables nothing (the receiver may not be
   * set up yet: it is a test).
   */
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
    return [...this.accounts.values()].filter((account) => account.owned).map((account) => account.id);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.refreshTimer);
    clearInterval(this.leaseTimer);
    await this.refreshing;
    await Promise.all([...this.forgetting]);
    await Promise.all([...this.accounts.keys()].map((id) => this.dropAccount(id)));
    await Promise.all([...this.tests]);
    this.agents.close();
  }

  /** Brings accounts and lanes in line with the webhooks read (and the accounts that exist). */
  private async apply(enabled: DeliveryWebhook[], accountIds: string[]): Promise<void> {
    this.webhooks = new Map(enabled.map((webhook) => [webhook.id, webhook]));
    const covered = new Set(accountIds.filter((accountId) => this.coveringWebhooks(accountId).length > 0));
    const work: Array<Promise<void>> = [];
    for (const accountId of [...this.accounts.keys()]) if (!covered.has(accountId)) work.push(this.dropAccount(accountId));
    for (const accountId of covered) {
      let account = this.accounts.get(accountId);
      if (account === undefined) {
        account = { id: accountId, owned: false, validUntilMs: 0, dropped: false, lanes: new Map(), queue: new SerialQueue() };
        this.accounts.set(accountId, account);
        work.push(this.claim(account));
      } else {
        const known = account;
        work.push(known.queue.run(() => this.syncLanes(known)));
      }
    }
    this.warnFailed(await Promise.allSettled(work), 'could not bring an account\'s webhook lanes in line; trying at the next refresh');
    this.options.metrics?.webhookAccounts.set(this.delivering().length);
  }

  private tracked(work: Promise<void>): Promise<void> {
    this.forgetting.add(work);
    void work.finally(() => this.forgetting.delete(work)).catch(() => undefined);
    return work;
  }

  private warnFailed(results: PromiseSettledResult<void>[], message: string): void {
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) this.options.logger.warn({ err: { message: (failed.reason as Error)?.message } }, message);
  }

  /**
   * Starts the lanes of webhooks now covering the account (and again those that ended on their own,
   * after a 410 whose disable failed), stops those of webhooks that no longer cover it. Runs in the
   * account's queue, and only while the account is delivered here.
   */
  private async syncLanes(account: CoveredAccount): Promise<void> {
    if (!account.owned || account.dropped || this.closed) return;
    const wanted = new Set(this.coveringWebhooks(account.id));
    const stopping: Array<Promise<void>> = [];
    for (const [webhookId, lane] of account.lanes) {
      if (wanted.has(webhookId) && !lane.finished) continue;
      account.lanes.delete(webhookId);
      stopping.push(lane.stop());
    }
    // A lane is replaced only once its old runner has ended: never two runners on one lane.
    await Promise.all(stopping);
    for (const webhookId of wanted) {
      if (account.lanes.has(webhookId)) continue;
      account.lanes.set(
        webhookId,
        new LaneRunner(
          { webhookId, accountId: account.id },
          {
            ...this.laneContext,
            webhook: () => this.webhooks.get(webhookId),
            mayDeliver: () => account.owned && !account.dropped && Date.now() < account.validUntilMs,
          },
        ),
      );
    }
  }

  private coveringWebhooks(accountId: string): string[] {
    return [...this.webhooks.values()].filter((w) => w.accounts === null || w.accounts.has(accountId)).map((w) => w.id);
  }

  /** Takes the account's delivery lease if nobody holds it, and then starts delivering it (in its queue). */
  private claim(account: CoveredAccount): Promise<void> {
    return account.queue.run(async () => {
      if (account.owned || account.dropped || this.closed) return;
      const sentMs = Date.now();
      let acquired: boolean;
      try {
        acquired = await this.options.leases.tryAcquire(account.id);
      } catch (err) {
        this.options.logger.warn({ account: account.id, err: { message: (err as Error).message } }, 'could not take a delivery lease; retrying');
        return;
      }
      if (!acquired) return;
      if (account.dropped || this.closed) {
        await this.options.leases.release(account.id);
        return;
      }
      account.owned = true;
      account.validUntilMs = this.leaseValidUntil(sentMs);
      account.releaseDemand = this.options.demand.retain(account.id);
      account.unsubscribe = this.options.log.onAppend(account.id, () => {
        for (const lane of account.lanes.values()) lane.wake();
      });
      await this.syncLanes(account);
      this.options.metrics?.webhookAccounts.set(this.delivering().length);
    });
  }

  /**
   * Renews the leases held; stops delivering where one was lost; tries to take those nobody holds.
   * One round at a time: a slow store does not pile rounds up.
   */
  private async keepLeases(): Promise<void> {
    if (this.closed || this.keeping) return;
    this.keeping = true;
    try {
      const rounds = [...this.accounts.values()].map((account) => (account.owned ? this.renew(account) : this.claim(account)));
      this.warnFailed(await Promise.allSettled(rounds), 'a delivery lease round failed');
    } finally {
      this.keeping = false;
    }
  }

  private renew(account: CoveredAccount): Promise<void> {
    return account.queue.run(async () => {
      if (!account.owned || account.dropped || this.closed) return;
      const sentMs = Date.now();
      let kept: boolean;
      try {
        kept = await this.options.leases.renew(account.id);
      } catch (err) {
        // Lanes hold once `validUntilMs` passes; a later renewal that lands lets them go on.
        this.options.logger.warn({ account: account.id, err: { message: (err as Error).message } }, 'could not renew a delivery lease');
        return;
      }
      if (kept) {
        const wasValid = Date.now() < account.validUntilMs;
        account.validUntilMs = this.leaseValidUntil(sentMs);
        if (!wasValid) for (const lane of account.lanes.values()) lane.wake();
        return;
      }
      this.options.logger.warn({ account: account.id }, 'delivery lease lost to another process; stopping its deliveries here');
      await this.stopDelivering(account);
    });
  }

  private leaseValidUntil(sentMs: number): number {
    const ttl = this.options.leases.ttlMs;
    if (!Number.isFinite(ttl)) return Number.POSITIVE_INFINITY;
    return sentMs + ttl - Math.max(ttl * LEASE_MARGIN_SHARE, Math.min(ATTEMPT_MS, ttl / 2));
  }

  private async dropAccount(accountId: string): Promise<void> {
    const account = this.accounts.get(accountId);
    if (account === undefined) return;
    this.accounts.delete(accountId);
    account.dropped = true;
    await account.queue.run(async () => {
      const owned = account.owned;
      await this.stopDelivering(account);
      if (owned) await this.options.leases.release(account.id);
    });
  }

  private async stopDelivering(account: CoveredAccount): Promise<void> {
    account.owned = false;
    account.validUntilMs = 0;
    account.unsubscribe?.();
    account.releaseDemand?.();
    delete account.unsubscribe;
    delete account.releaseDemand;
    const lanes = [...account.lanes.values()];
    account.lanes.clear();
    await Promise.all(lanes.map((lane) => lane.stop()));
    this.options.metrics?.webhookAccounts.set(this.delivering().length);
  }

  /** One signed POST of the event's JSON (Standard Webhooks headers, signing.ts). */
  private async sendOne(webhook: DeliveryWebhook, event: { id: string }): Promise<SendOutcome> {
    const body = JSON.stringify(event);
    let headers: SignedHeaders;
    try {
      headers = signWebhook(webhook.secret, event.id, Date.now() / 1000, body);
    } catch {
      // A secret that is not `whsec_…` base64 (a damaged record): a failed attempt, never a crash.
      return { ok: false, status: null, retryAfterMs: null, gone: false, error: 'the webhook secret cannot sign; rotate it', durationMs: 0 };
    }
    return sendWebhook(webhook.url, body, { ...headers }, { egress: this.options.egress, agents: this.agents });
  }
}
