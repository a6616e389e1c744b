/**
 * What delivery needs of the webhook store, and what it gives back: the enabled webhooks as the
 * dispatcher uses them (filters as sets, the secret unsealed, never logged), the way to disable one
 * (a receiver's 410), and where attempts are recorded (`GET /v1/webhooks/{id}/deliveries`).
 */

export interface DeliveryWebhook {
  id: string;
  url: string;
  /** The event types it takes; null: every type but `events.lost` (API.md). */
  events: ReadonlySet<string> | null;
  /** The accounts it covers; null: every account. */
  accounts: ReadonlySet<string> | null;
  /** Its lanes start after this time: a new webhook is not sent the log's past. */
  createdAtMs: number;
  /** `whsec_…`, unsealed. */
  secret: string;
}

export interface WebhookDirectory {
  /** Every enabled webhook. */
  enabled(): Promise<DeliveryWebhook[]>;
  /** One webhook, enabled or not (for a test delivery), or null. */
  get(id: string): Promise<DeliveryWebhook | null>;
  /** Disables a webhook after its receiver answered 410 Gone (`reason` is shown on it). */
  disable(id: string, reason: string): Promise<void>;
  /** Grows with every change to any webhook, by any process (one cheap read). */
  version(): Promise<number>;
}

/** One delivery attempt as `GET /v1/webhooks/{id}/deliveries` shows it (API.md). */
export interface DeliveryRecord {
  eventId: string;
  type: string;
  attempt: number;
  at: string;
  status: 'delivered' | 'retrying' | 'failed';
  responseStatus: number | null;
  error: string | null;
  nextAttemptAt: string | null;
}
