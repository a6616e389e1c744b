/**
 * The webhook routes' shapes (API.md, Webhooks): what an admin sends to create or change a webhook,
 * what the gateway shows of one (never its secret, but in the answers of create and rotate-secret),
 * and the delivery records.
 */
import { Type } from 'typebox';
import { WEBHOOK_EVENT_TYPES, WEBHOOK_ID_PATTERN, WEBHOOK_TEST_EVENT, WEBHOOK_URL_MAX_LENGTH, DELIVERY_RECORDS_KEPT, DELIVERY_STATUSES } from '../../webhooks/types.js';
import { ACCOUNT_ID_PATTERN, Nullable, StringEnum } from './common.js';
import { HTTP_URL } from './patterns.js';

export const WebhookId = Type.String({ pattern: WEBHOOK_ID_PATTERN, description: 'Webhook id', examples: ['wh_Jx2v9QmLr0tYb3cA'] });

const Url = Type.String({
  minLength: 1,
  maxLength: WEBHOOK_URL_MAX_LENGTH,
  pattern: HTTP_URL,
  description:
    'Where events are POSTed. `https:`; `http:` only to a host an operator admitted with `EGRESS_ALLOW`. No user name or password, no fragment. The host must pass the egress policy (403 `HOST_NOT_ALLOWED`), now and at every delivery.',
  examples: ['https://hooks.example.com/mailgw'],
});

const Events = Type.Array(StringEnum([...WEBHOOK_EVENT_TYPES, '*'] as const), {
  minItems: 1,
  maxItems: 100,
  uniqueItems: true,
  description: `Event types to deliver, or \`["*"]\` for every type (also types added later; never \`events.lost\`). From: ${WEBHOOK_EVENT_TYPES.join(', ')}.`,
  examples: [['message.new', 'message.deleted']],
});

const Accounts = Type.Array(Type.String({ pattern: `^(\\*|${ACCOUNT_ID_PATTERN.slice(1, -1)})$` }), {
  minItems: 1,
  maxItems: 1000,
  uniqueItems: true,
  description: 'Account ids whose events to deliver, or `["*"]` for every account (also those created later)',
  examples: [['alice']],
});

const Description = Type.String({ maxLength: 200, description: 'What the webhook is for', examples: ['CRM inbox sync'] });

export const WebhookCreateBody = Type.Object(
  {
    url: Url,
    events: Type.Optional(Events),
    accounts: Type.Optional(Accounts),
    description: Type.Optional(Description),
  },
  { additionalProperties: false, examples: [{ url: 'https://hooks.example.com/mailgw', events: ['message.new'], accounts: ['alice'] }] },
);

export const WebhookPatchBody = Type.Object(
  {
    url: Type.Optional(Url),
    events: Type.Optional(Events),
    accounts: Type.Optional(Accounts),
    enabled: Type.Optional(
      Type.Boolean({ description: 'False: nothing is delivered until it is true again. True also clears `disabledReason`.' }),
    ),
    description: Type.Optional(Nullable(Description)),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'Any of the fields to change; the others stay. A new `url` is checked as at creation.',
    examples: [{ enabled: true }],
  },
);

const webhookProperties = {
  id: WebhookId,
  url: Type.String({ description: 'As stored (normalised)', examples: ['https://hooks.example.com/mailgw'] }),
  events: Type.Array(Type.String(), { description: 'Event types delivered; `["*"]`: every type', examples: [['message.new']] }),
  accounts: Type.Array(Type.String(), { description: 'Accounts whose events are delivered; `["*"]`: every account', examples: [['alice']] }),
  description: Nullable(Type.String()),
  enabled: Type.Boolean({ description: 'Whether events are delivered to it' }),
  disabledReason: Nullable(
    Type.String({ description: 'Why the gateway disabled it on its own (the receiver answered 410 Gone); null otherwise', examples: ['the receiver answered 410 Gone'] }),
  ),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
};

export const Webhook = Type.Object(webhookProperties, { $id: 'Webhook', description: 'A webhook, never with its secret' });

const Secret = Type.String({
  description:
    'The signing secret, shown only in this answer (stored sealed): verify each delivery\'s `webhook-signature` with it, as the Standard Webhooks libraries do',
  examples: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
});

export const WebhookWithSecret = Type.Object(
  { ...webhookProperties, secret: Secret },
  { description: 'The webhook with its signing secret (it cannot be shown again)' },
);

export const WebhookList = Type.Object({ webhooks: Type.Array(Type.Ref('Webhook')) });
export const WebhookParams = Type.Object({ id: WebhookId });

export const DeliveriesQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: DELIVERY_RECORDS_KEPT, default: 50, description: `Most records to return (the gateway keeps the last ${DELIVERY_RECORDS_KEPT} per webhook)` }),
});

const Delivery = Type.Object(
  {
    eventId: Type.String({ description: 'The event delivered (also its `webhook-id` header), the same on every attempt', examples: ['1718000000000-0'] }),
    type: Type.String({ description: `The event's type (\`${WEBHOOK_TEST_EVENT}\` for a test delivery; \`unknown\` for an event removed from the log by retention before it could be delivered, status \`failed\`)`, examples: ['message.new'] }),
    attempt: Type.Integer({ minimum: 1, description: '1 for the first attempt of this event' }),
    at: Type.String({ format: 'date-time', description: 'When the attempt was made' }),
    status: StringEnum(DELIVERY_STATUSES, {
      description: '`delivered`: a 2xx came; `retrying`: it failed, another attempt comes at `nextAttemptAt`; `failed`: no more attempts',
    }),
    responseStatus: Nullable(Type.Integer({ description: "The receiver's HTTP status; null when none came" })),
    error: Nullable(Type.String({ description: 'What went wrong; null when delivered', examples: ['HTTP 500'] })),
    nextAttemptAt: Nullable(Type.String({ format: 'date-time', description: 'When the next attempt comes (status `retrying`)' })),
  },
  { description: 'One delivery attempt' },
);

export const DeliveryList = Type.Object({ deliveries: Type.Array(Delivery, { description: 'Newest first' }) });

export const TestDelivery = Type.Object(
  { eventId: Type.String({ description: 'The test event\'s id: its `webhook-id` header, and the `eventId` of its delivery record' }) },
  { description: 'A `webhook.test` event is on its way' },
);
