/** Webhook and delivery records as the stores keep them, for the store tests. */
import { newWebhookId, type DeliveryRecord, type WebhookRecord } from '../../src/webhooks/types.js';

export function webhookRecord(overrides: Partial<WebhookRecord> = {}): WebhookRecord {
  const at = new Date().toISOString();
  return {
    id: newWebhookId(),
    url: 'https://1.1.1.1/hook',
    events: ['*'],
    accounts: ['*'],
    description: null,
    enabled: true,
    disabledReason: null,
    createdAt: at,
    updatedAt: at,
    sealedSecret: 'v1.aaaa.bbbb.cccc',
    ...overrides,
  };
}

/** A delivered first attempt of the event. */
export function deliveryAttempt(eventId: string): DeliveryRecord {
  return { eventId, type: 'message.new', attempt: 1, at: new Date().toISOString(), status: 'delivered', responseStatus: 200, error: null, nextAttemptAt: null };
}
