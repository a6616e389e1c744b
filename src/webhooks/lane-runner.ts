/**
 * Works one delivery lane (lanes.ts): reads its head, sends it, and moves on only once the head is
 * settled, so a webhook gets one account's events in log order (API.md, Webhooks). A failed attempt
 * is tried again on the retry schedule (retry-schedule.ts) with its state stored first, so a restart
 * keeps the back-off and the give-up time; a 410 Gone disables the webhook and leaves the head where it
 * is (re-enabled, the webhook resumes from it); past WEBHOOK_RETRY_HOURS the head is failed and the
 * lane goes on with the next event.
 *
 * One runner per lane, only in the process holding the account's delivery lease (dispatcher.ts), and
 * it reads or sends only while that lease is surely still held (`mayDeliver`): a process cut off from
 * Redis stops sending before another can take the account over. Whatever goes wrong in one step (a
 * store error, a bug) is logged and the lane goes on after a pause: a lane never takes the process down.
 */
import type { Logger } from 'pino';
import type { MailEvent } from '../events/types.js';
import type { Metrics } from '../metrics/metrics.js';
import { laneStartId, type DeliveryLanes, type LaneEntry, type LaneKey, type RetryState } from './lanes.js';
import { nextAttempt } from './retry-schedule.js';
import type { SendOutcome } from './sender.js';
import type { DeliveryRecord, DeliveryWebhook } from './webhook-directory.js';

/** Events read per look at the lane (later ones wait in the queue, not in memory). */
const READ_BATCH = 50;
/** Pause after the queue could not be read or written (Redis down): no hot loop. */
const STORE_PAUSE_MS = 2_000;
/** While the lease is not surely held, the lane looks again this often (a renewal also wakes it). */
const LEASE_PAUSE_MS = 1_000;
/** Attempt records written behind the deliveries at most; past this a delivery waits for them. */
const RECORDS_BEHIND = 100;

export interface LaneContext {
  lanes: DeliveryLanes;
  /** The webhook as it is now (its URL, secret or filter may change between attempts); undefined once gone. */
  webhook(): DeliveryWebhook | undefined;
  /** Whether this process surely still holds the account's delivery lease. */
  mayDeliver(): boolean;
  /** One signed attempt. */
  send(webhook: DeliveryWebhook, event: MailEvent): Promise<SendOutcome>;
  /** Keeps a record of an attempt (best effort: a lost record never holds a delivery). */
  record(webhookId: string, record: DeliveryRecord): Promise<void>;
  /** The receiver answered 410 Gone. */
  disable(webhookId: string, reason: string): Promise<void>;
  retryHours: number;
  /** A lane with nothing to do reads again after this long even without a hint. */
  pollIntervalMs: number;
  logger: Logger;
  metrics?: Metrics;
}

export class LaneRunner {
  private stopped = false;
  private woken = false;
  /** Settles handed to the store and not yet landed (settleBehind), and attempt records likewise. */
  private settling: Promise<void> = Promise.resolve();
  private recording: Promise<void> = Promise.resolve();
  private recordsBehind = 0;
  /** The head's retry state as stored; undefined until read once. */
  private retry: RetryState | null | undefined;
  /** The store failed and that was logged: the next failures of this streak are not (no log flood in an outage). */
  private failing = false;
  private wakeUp: (() => void) | null = null;
  readonly done: Promise<void>;
  /** The runner has ended (stopped, or after a 410); the dispatcher replaces one that should still run. */
  finished = false;
  /** Events read from the lane and not yet settled (at most READ_BATCH: the lane reads no further ahead). */
  backlog = 0;
  /** When the oldest event not yet settled was seen (ms since the epoch); null when the lane is caught up. */
  oldestPendingAtMs: number | null = null;

  constructor(
    private readonly key: LaneKey,
    private readonly context: LaneContext,
  ) {
    this.done = this.run();
  }

  /** Something was appended to the account's log: read now. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Ends the runner after the attempt in flight (whose outcome is still recorded). */
  stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    return this.done;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.step();
      } catch (err) {
        this.warn(err, 'a webhook delivery lane failed; going on after a pause');
        await this.pause(STORE_PAUSE_MS, false);
      }
    }
    await this.settling;
    await this.recording;
    this.finished = true;
  }

  /** One read of the lane and the work on it. */
  private async step(): Promise<void> {
    // What was delivered is settled before the lane is read again (or it would come back).
    await this.settling;
    const webhook = this.context.webhook();
    // Gone or not yet known (the dispatcher is between two reads of the webhooks): it stops this runner if gone.
    if (webhook === undefined || !this.context.mayDeliver()) return this.pause(LEASE_PAUSE_MS, true);
    this.woken = false;
    let entries;
    try {
      entries = await this.context.lanes.pending(this.key, laneStartId(webhook.createdAtMs), READ_BATCH);
      // Only this runner writes the lane's retry state while it holds the lease: read once, then kept here.
      if (this.retry === undefined) this.retry = await this.context.lanes.retryState(this.key);
      this.failing = false;
    } catch (err) {
      this.warn(err, 'could not read a webhook delivery lane; trying again');
      return this.pause(STORE_PAUSE_MS, false);
    }
    this.backlog = entries.length;
    this.oldestPendingAtMs = entries.length === 0 ? null : atOf(entries[0]!);
    if (entries.length === 0) {
      if (!this.woken) await this.pause(this.context.pollIntervalMs, true);
      return;
    }
    await this.work(entries);
  }

  /**
   * Goes through one read of the lane in order. Events this webhook does not take (its filter) and
   * entries gone from the log are settled with the next head delivered (or at the end); the batch is
   * left for a fresh read as soon as a head is not settled (it waits for a retry, or the webhook went).
   */
  private async work(entries: LaneEntry[]): Promise<void> {
    const passed: string[] = [];
    for (const [index, entry] of entries.entries()) {
      if (this.stopped) return;
      this.backlog = entries.length - index;
      this.oldestPendingAtMs = atOf(entry);
      const webhook = this.context.webhook();
      if (webhook === undefined || !this.context.mayDeliver()) return;
      if (entry.event === null) {
        this.recordGone(webhook, entry.id);
        passed.push(entry.id);
        continue;
      }
      if (!takes(webhook, entry.event.type)) {
        passed.push(entry.id);
        continue;
      }
      const settled = await this.deliver(webhook, entry.event, passed);
      if (settled === 'settled') passed.length = 0;
      else {
        if (passed.length > 0) this.settleBehind([...passed]);
        return;
      }
    }
    if (passed.length > 0) this.settleBehind([...passed]);
  }

  /** One attempt at the head (or a wait for its retry time). `settled`: the lane moved past it. */
  private async deliver(webhook: DeliveryWebhook, event: MailEvent, passed: string[] = []): Promise<'settled' | 'held'> {
    let retry = this.retry ?? null;
    if (retry !== null && retry.eventId !== event.id) retry = null;
    if (retry !== null && retry.nextAttemptAtMs > Date.now()) {
      // Not before its time, whatever is appended meanwhile; the loop then reads the lane again.
      await this.pause(retry.nextAttemptAtMs - Date.now(), false);
      return 'held';
    }
    const attempt = (retry?.attempts ?? 0) + 1;
    const firstAttemptAtMs = retry?.firstAttemptAtMs ?? Date.now();
    // Records are history, deliveries are not: a store slower than the receiver holds deliveries back
    // only once this many records wait, so memory stays bounded.
    if (this.recordsBehind >= RECORDS_BEHIND) await this.recording;
    // That wait may have been long (a store down): stopped, or the lease no longer surely held, no send.
    if (this.stopped || !this.context.mayDeliver()) return 'held';
    const outcome = await this.context.send(webhook, event);
    const at = new Date().toISOString();
    const base = { eventId: event.id, type: event.type, attempt, at, responseStatus: outcome.status, error: outcome.error };
    this.context.metrics?.webhookAttemptDuration.observe(outcome.durationMs / 1000);

    if (outcome.ok) {
      this.context.metrics?.webhookDeliveries.inc({ status: 'delivered' });
      const at = Date.parse(event.at);
      if (Number.isFinite(at)) this.context.metrics?.webhookLag.observe(Math.max(0, Date.now() - at) / 1000);
      this.record(webhook, { ...base, status: 'delivered', nextAttemptAt: null });
      this.retry = null;
      this.settleBehind([...passed, event.id]);
      return 'settled';
    }
    if (outcome.gone) {
      this.context.metrics?.webhookDeliveries.inc({ status: 'failed' });
      const reason = 'the receiver answered 410 Gone';
      this.record(webhook, { ...base, status: 'failed', error: `${reason}: the webhook is disabled`, nextAttemptAt: null });
      this.stopped = true;
      await this.context.disable(webhook.id, reason).catch((err: unknown) => this.warn(err, 'could not disable a webhook'));
      return 'held';
    }
    const next = nextAttempt(attempt, Date.now(), firstAttemptAtMs, this.context.retryHours, outcome.retryAfterMs).nextAttemptAtMs;
    if (next === null) {
      this.context.metrics?.webhookDeliveries.inc({ status: 'failed' });
      this.record(webhook, { ...base, status: 'failed', nextAttemptAt: null });
      this.retry = null;
      this.settleBehind([...passed, event.id]);
      return 'settled';
    }
    this.context.metrics?.webhookDeliveries.inc({ status: 'retrying' });
    const state: RetryState = { eventId: event.id, attempts: attempt, firstAttemptAtMs, nextAttemptAtMs: next };
    this.retry = state;
    try {
      await this.context.lanes.saveRetryState(this.key, state);
    } catch (err) {
      // Unsaved, a restart tries sooner with the count starting again: never lost.
      this.warn(err, 'could not store a webhook retry state');
    }
    this.record(webhook, { ...base, status: 'retrying', nextAttemptAt: new Date(next).toISOString() });
    return 'held';
  }

  private async settle(eventIds: string[]): Promise<boolean> {
    try {
      await this.context.lanes.settle(this.key, eventIds);
      return true;
    } catch (err) {
      this.warn(err, 'could not settle webhook deliveries; trying again');
      await sleep(STORE_PAUSE_MS);
      return false;
    }
  }

  /**
   * Settles a delivered head (and the entries passed before it) while the next one goes out: one
   * store round trip less per event. In order, and always before the lane is read again; a crash in
   * between sends these again (at least once). Tried until it lands, once more after a stop.
   */
  private settleBehind(eventIds: string[]): void {
    this.settling = this.settling.then(async () => {
      while (!(await this.settle(eventIds)) && !this.stopped) {
        // settle paused already
      }
    });
  }

  /** Keeps an attempt's record in the background, in the order of the attempts (best effort). */
  private record(webhook: DeliveryWebhook, record: DeliveryRecord): void {
    this.recordsBehind++;
    this.recording = this.recording.then(async () => {
      try {
        await this.context.record(webhook.id, record);
      } catch (err) {
        this.warn(err, 'could not keep a webhook delivery record');
      } finally {
        this.recordsBehind--;
      }
    });
  }

  /**
   * An entry handed out before and gone from the log when read again (trimmed by retention while its
   * receiver was failing, when EVENTS_RETENTION_SECONDS is shorter than WEBHOOK_RETRY_HOURS): it cannot
   * be sent, and the record says so rather than the event vanishing in silence.
   */
  private recordGone(webhook: DeliveryWebhook, eventId: string): void {
    this.context.metrics?.webhookDeliveries.inc({ status: 'failed' });
    this.record(webhook, {
      eventId,
      type: 'unknown',
      attempt: (this.retry?.eventId === eventId ? this.retry.attempts : 0) + 1,
      at: new Date().toISOString(),
      status: 'failed',
      responseStatus: null,
      error: 'the event was removed from the log (EVENTS_RETENTION_SECONDS) before it could be delivered',
      nextAttemptAt: null,
    });
  }

  /** Waits `ms`; a wake cuts it short only when `wakeable` (a retry's wait is not). Stop always does. */
  private pause(ms: number, wakeable: boolean): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      // setTimeout takes at most 2^31 - 1 ms; a longer wait simply looks again then.
      const timer = setTimeout(finish, Math.min(Math.max(ms, 0), 2 ** 31 - 1));
      this.wakeUp = () => {
        if (wakeable || this.stopped) finish();
      };
    });
  }

  private warn(err: unknown, message: string): void {
    if (this.failing) return;
    this.failing = true;
    this.context.logger.warn({ webhook: this.key.webhookId, account: this.key.accountId, err: { message: (err as Error).message } }, message);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** When an entry's event was seen (its `at`); now for an entry gone from the log. */
function atOf(entry: LaneEntry): number {
  const at = entry.event === null ? NaN : Date.parse(entry.event.at);
  return Number.isNaN(at) ? Date.now() : at;
}

/** Whether a webhook takes events of this type (its `events` filter; null: every type). */
export function takes(webhook: DeliveryWebhook, type: string): boolean {
  return webhook.events === null || webhook.events.has(type);
}
