/**
 * A delivery lane: the events of one account, in log order, on their way to one webhook (API.md,
 * Webhooks: "in event order per webhook and account"). A lane holds its head until the head is
 * settled (delivered, failed for good, or not an event this webhook takes), so a receiver that fails
 * holds back that account's later events for that webhook and nothing else.
 *
 * What a lane remembers is durable, so a gateway stopped or killed mid-delivery sends the head again
 * when it starts (at least once): in Redis a consumer group per webhook on the account's event stream
 * (redis-lanes.ts, the pending-entries list is the "in flight" set), without Redis a cursor per lane
 * under DATA_DIR (file-lanes.ts). Either keeps the retry state beside it, so a restart neither
 * resets the back-off nor forgets when the first attempt was.
 */
import type { MailEvent } from '../events/types.js';

export interface LaneKey {
  webhookId: string;
  accountId: string;
}

/** An event at the head of a lane; `event` is null when the entry is gone (trimmed by retention) or damaged. */
export interface LaneEntry {
  id: string;
  event: MailEvent | null;
}

/** Where a lane's head stands after failed attempts. */
export interface RetryState {
  /** The event these attempts were for; a different head starts afresh. */
  eventId: string;
  /** Attempts made so far (1 after the first failed). */
  attempts: number;
  firstAttemptAtMs: number;
  nextAttemptAtMs: number;
}

export interface DeliveryLanes {
  /**
   * Up to `limit` unsettled events of the lane, oldest first: first those handed out before and never
   * settled (a process died mid-delivery), then new ones. A lane seen for the first time starts after
   * `startId` (the webhook's creation): a new webhook is not sent the log's past.
   */
  pending(lane: LaneKey, startId: string, limit: number): Promise<LaneEntry[]>;
  /**
   * The lane moves past these events (in order, all of the head's run); never back, whoever settles
   * late. Its retry state is cleared when it was for one of them: a settle landing after the next
   * head's first failure leaves that head's back-off alone.
   */
  settle(lane: LaneKey, eventIds: string[]): Promise<void>;
  retryState(lane: LaneKey): Promise<RetryState | null>;
  saveRetryState(lane: LaneKey, state: RetryState): Promise<void>;
  /** Forgets every lane of a deleted webhook among these accounts. */
  dropWebhook(webhookId: string, accountIds: string[]): Promise<void>;
  /** Forgets every lane of a deleted account. */
  dropAccount(accountId: string): Promise<void>;
  close(): Promise<void>;
}

/** The id a lane of a webhook created at `createdAtMs` starts after (ids are `<ms>-<seq>`, exclusive). */
export function laneStartId(createdAtMs: number): string {
  return `${Math.max(0, Math.floor(createdAtMs))}-0`;
}
