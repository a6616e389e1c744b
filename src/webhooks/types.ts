/**
 * Webhooks as they are stored (API.md, Webhooks): where to deliver, which events of which accounts,
 * whether deliveries go out, and the signing secret, sealed as mail passwords are (accounts/sealing.ts).
 * Also the stores' interfaces: the webhook records, and each webhook's latest delivery records.
 *
 * Nothing here knows HTTP or Redis: routes translate requests into the service's calls, the stores
 * (stores.ts, delivery-records.ts) translate these shapes into files or Redis keys.
 */
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { EVENT_TYPES, type EventType } from '../events/types.js';

/** Webhook ids are not secret (they appear in lists, logs and URLs); the prefix tells them apart. */
export const WEBHOOK_ID_PREFIX = 'wh_';

/** What a webhook id looks like: safe as a URL path segment, a file name and a Redis hash tag. */
export const WEBHOOK_ID_PATTERN = '^wh_[A-Za-z0-9_-]{1,64}$';
const WEBHOOK_ID = new RegExp(WEBHOOK_ID_PATTERN);

/** `events` or `accounts` of `['*']`: every one, also those that come later. */
export const EVERY = '*';

/**
 * The types a webhook can subscribe to. "All events" (API.md) is every type but `events.lost`, which
 * is synthesised per SSE stream and never stored, so a webhook could not receive it anyway.
 */
export const WEBHOOK_EVENT_TYPES = EVENT_TYPES;

/**
 * The one event that is not in the log: sent by `POST /v1/webhooks/{id}/test`, to that webhook only,
 * whatever its `events` filter. It cannot be subscribed to.
 */
export const WEBHOOK_TEST_EVENT = 'webhook.test';

/** The longest URL a webhook may have, in characters (well under what any HTTP stack accepts, RFC 9110 §4.1). */
export const WEBHOOK_URL_MAX_LENGTH = 2048;

export interface WebhookRecord {
  id: string;
  /** An absolute `https:` URL, or `http:` to a host the operator admitted (EGRESS_ALLOW). */
  url: string;
  /** Event types to deliver, or `['*']` for every type (also types added later). */
  events: Array<EventType | typeof EVERY>;
  /** Account ids whose events to deliver, or `['*']` for every account (also those created later). */
  accounts: string[];
  description: string | null;
  /** False: nothing is delivered; enabled again, it resumes where it stopped (decision 0015). */
  enabled: boolean;
  /**
   * Why the gateway disabled it on its own (a receiver answered 410 Gone); null when enabled, or when
   * an admin disabled it. Enabling it again clears this.
   */
  disabledReason: string | null;
  createdAt: string;
  updatedAt: string;
  /** The `whsec_…` signing secret, sealed (accounts/sealing.ts); never shown after create or rotate. */
  sealedSecret: string;
}

/** Where webhooks live: beside the accounts (a file under DATA_DIR, or Redis). */
export interface WebhookStore {
  /** GatewayError on failure; ids are unique by construction. */
  create(record: WebhookRecord): Promise<void>;
  /** Every webhook, oldest first. */
  list(): Promise<WebhookRecord[]>;
  get(id: string): Promise<WebhookRecord | null>;
  /**
   * Applies `change` to the current record and stores the result, as one step: a write that lands
   * between the read and the store (an admin's PATCH, the dispatcher disabling the webhook) makes the
   * change run again on the newer record, so no write is lost. Null when there is no such webhook
   * (never creates one). `change` must be pure and synchronous; what it throws propagates.
   */
  update(id: string, change: (current: WebhookRecord) => WebhookRecord): Promise<WebhookRecord | null>;
  /** True when a webhook with this id existed. */
  delete(id: string): Promise<boolean>;
  /**
   * A number that grows with every write to the store (by any process sharing it): a reader that
   * keeps webhooks in memory compares it on an interval and re-reads `list()` when it moved.
   */
  version(): Promise<number>;
  close(): Promise<void>;
}

/** One delivery attempt of one event to one webhook (API.md: `GET /v1/webhooks/{id}/deliveries`). */
export interface DeliveryRecord {
  eventId: string;
  /**
   * The event's type, or `webhook.test`. A string, not the union: records outlive a gateway version,
   * and one written by a newer version (with a type this one does not know) must still be shown.
   */
  type: string;
  /** 1 for the first attempt of this event. */
  attempt: number;
  /** When the attempt was made (ISO 8601). */
  at: string;
  /** `retrying`: failed, another attempt comes at `nextAttemptAt`; `failed`: no more attempts. */
  status: 'delivered' | 'retrying' | 'failed';
  /** The receiver's HTTP status; null when none came (refused, timed out, not allowed). */
  responseStatus: number | null;
  /** What went wrong (no secret, no response body); null when delivered. */
  error: string | null;
  nextAttemptAt: string | null;
}

export const DELIVERY_STATUSES = ['delivered', 'retrying', 'failed'] as const;

/** The latest delivery records of each webhook, newest first, a bounded number per webhook. */
export interface DeliveryRecords {
  add(webhookId: string, record: DeliveryRecord): Promise<void>;
  /** The newest `limit` records, newest first; `[]` for a webhook with none. */
  list(webhookId: string, limit: number): Promise<DeliveryRecord[]>;
  /** Drops every record of the webhook (it was deleted). */
  remove(webhookId: string): Promise<void>;
  close(): Promise<void>;
}

/** How many delivery records are kept per webhook (older ones are dropped as new ones come). */
export const DELIVERY_RECORDS_KEPT = 100;

/** A new webhook id. 96 random bits: unguessable, and no collision among any number of webhooks a gateway holds. */
export function newWebhookId(): string {
  return `${WEBHOOK_ID_PREFIX}${randomBytes(12).toString('base64url')}`;
}

export function isWebhookId(value: string): boolean {
  return WEBHOOK_ID.test(value);
}

export function webhookNotFound(id: string): GatewayError {
  return new GatewayError('WEBHOOK_NOT_FOUND', `No webhook ${id}`);
}

/** The stored form's own check: anything else in a store is corrupt. */
export function webhookRecordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const r = value as Record<string, unknown>;
  if (typeof r.id !== 'string' || !isWebhookId(r.id)) return 'bad "id"';
  if (typeof r.url !== 'string' || r.url.length === 0) return 'bad "url"';
  if (!Array.isArray(r.events) || !r.events.every((e) => typeof e === 'string')) return 'bad "events"';
  if (!Array.isArray(r.accounts) || !r.accounts.every((a) => typeof a === 'string')) return 'bad "accounts"';
  if (r.description !== null && typeof r.description !== 'string') return 'bad "description"';
  if (typeof r.enabled !== 'boolean') return 'bad "enabled"';
  if (r.disabledReason !== null && typeof r.disabledReason !== 'string') return 'bad "disabledReason"';
  if (typeof r.createdAt !== 'string' || typeof r.updatedAt !== 'string') return 'bad "createdAt" or "updatedAt"';
  if (typeof r.sealedSecret !== 'string' || r.sealedSecret.length === 0) return 'bad "sealedSecret"';
  return null;
}

/** A stored delivery record's own check. */
export function deliveryRecordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const r = value as Record<string, unknown>;
  if (typeof r.eventId !== 'string') return 'bad "eventId"';
  if (typeof r.type !== 'string') return 'bad "type"';
  if (typeof r.attempt !== 'number') return 'bad "attempt"';
  if (typeof r.at !== 'string') return 'bad "at"';
  if (!(DELIVERY_STATUSES as readonly unknown[]).includes(r.status)) return 'bad "status"';
  return null;
}
