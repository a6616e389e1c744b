/**
 * What delivery needs of the webhook store (the dispatcher's view of it): the enabled webhooks with
 * their filters as sets and their secrets unsealed (never logged), the way to disable one (a
 * receiver's 410), the store's version, and where attempts are recorded
 * (`GET /v1/webhooks/{id}/deliveries`). `directoryOf` reads it from the webhook service.
 */
import { GatewayError } from '../errors.js';
import { EVERY, type DeliveryRecord } from './types.js';
import type { WebhookService, WebhookView } from './webhook-service.js';

export type { DeliveryRecord } from './types.js';

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

/** The dispatcher's view of the webhook service. */
export function directoryOf(service: WebhookService): WebhookDirectory & { record(id: string, record: DeliveryRecord): Promise<void> } {
  return {
    enabled: async () => (await service.enabledWithSecrets()).map(deliveryWebhook),
    get: async (id) => {
      try {
        return deliveryWebhook(await service.withSecret(id));
      } catch (err) {
        if (err instanceof GatewayError && err.code === 'WEBHOOK_NOT_FOUND') return null;
        throw err;
      }
    },
    disable: async (id, reason) => {
      await service.disable(id, reason);
    },
    version: () => service.version(),
    record: (id, record) => service.recordDelivery(id, record),
  };
}

/** A webhook as the dispatcher takes it: `["*"]` as null, lists as sets. */
export function deliveryWebhook(webhook: WebhookView & { secret: string }): DeliveryWebhook {
  const setOf = (values: readonly string[]): ReadonlySet<string> | null => (values.includes(EVERY) ? null : new Set(values));
  return {
    id: webhook.id,
    url: webhook.url,
    events: setOf(webhook.events),
    accounts: setOf(webhook.accounts),
    createdAtMs: Date.parse(webhook.createdAt),
    secret: webhook.secret,
  };
}
