/**
 * Webhook administration (API.md, Webhooks), admin keys only. Deliveries themselves run in the
 * dispatcher (src/webhooks/dispatcher.ts); `test` hands it one event to send now.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { problems, success } from '../schemas/common.js';
import { DELIVERY_RECORDS_KEPT } from '../../webhooks/types.js';
import { deliveryWebhook } from '../../webhooks/webhook-directory.js';
import { DeliveriesQuery, DeliveryList, TestDelivery, WebhookCreateBody, WebhookList, WebhookParams, WebhookPatchBody, WebhookWithSecret } from '../schemas/webhooks.js';

export const webhookRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { webhooks, deliveries } = app.services;

  app.post(
    '/webhooks',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['webhooks'],
        operationId: 'createWebhook',
        summary: 'Create a webhook',
        description:
          'Events of the chosen types and accounts are POSTed to `url`, signed as Standard Webhooks sign (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The URL\'s host is checked by the egress policy now (403 `HOST_NOT_ALLOWED`) and at every delivery. The signing secret is in this answer only; it is stored sealed.',
        body: WebhookCreateBody,
        response: {
          201: success('The new webhook, enabled, with its secret (shown only here)', WebhookWithSecret),
          ...problems('VALIDATION_FAILED', 'HOST_NOT_ALLOWED', 'UPSTREAM_ERROR', 'SERVICE_UNAVAILABLE'),
        },
      },
    },
    async (request, reply) => {
      const created = await webhooks.create(request.body);
      return reply.code(201).header('location', `/v1/webhooks/${created.id}`).send(created);
    },
  );

  app.get(
    '/webhooks',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['webhooks'],
        operationId: 'listWebhooks',
        summary: 'List webhooks',
        response: { 200: success('Every webhook, oldest first, never with its secret', WebhookList), ...problems('SERVICE_UNAVAILABLE') },
      },
    },
    async () => ({ webhooks: await webhooks.list() }),
  );

  app.get(
    '/webhooks/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['webhooks'],
        operationId: 'getWebhook',
        summary: 'Get a webhook',
        params: WebhookParams,
        response: {
          200: success('The webhook, never with its secret', Type.Ref('Webhook')),
          ...problems('VALIDATION_FAILED', 'WEBHOOK_NOT_FOUND', 'SERVICE_UNAVAILABLE'),
        },
      },
    },
    async (request) => webhooks.get(request.params.id),
  );

  app.patch(
    '/webhooks/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['webhooks'],
        operationId: 'updateWebhook',
        summary: 'Change a webhook',
        description:
          'Changes `url`, `events`, `accounts`, `enabled` or `description`; the other fields stay. A new `url` is checked as at creation. `enabled: false` stops deliveries; `enabled: true` resumes them and clears `disabledReason`. The secret does not change (see rotate-secret).',
        params: WebhookParams,
        body: WebhookPatchBody,
        response: {
          200: success('The webhook as changed, never with its secret', Type.Ref('Webhook')),
          ...problems('VALIDATION_FAILED', 'HOST_NOT_ALLOWED', 'WEBHOOK_NOT_FOUND', 'UPSTREAM_ERROR', 'SERVICE_UNAVAILABLE'),
        },
      },
    },
    async (request) => webhooks.update(request.params.id, request.body),
  );

  app.delete(
    '/webhooks/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['webhooks'],
        operationId: 'deleteWebhook',
        summary: 'Delete a webhook',
        description: 'Nothing more is delivered to it; its delivery records go with it.',
        params: WebhookParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problems('VALIDATION_FAILED', 'WEBHOOK_NOT_FOUND', 'SERVICE_UNAVAILABLE') },
      },
    },
    async (request, reply) => {
      await webhooks.delete(request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/webhooks/:id/rotate-secret',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['webhooks'],
        operationId: 'rotateWebhookSecret',
        summary: "Replace a webhook's signing secret",
        description:
          'Answers the webhook with a new secret (shown only here). Deliveries from now on are signed with it; the old secret stops working at once, so update the receiver with this answer.',
        params: WebhookParams,
        response: {
          200: success('The webhook with its new secret (shown only here)', WebhookWithSecret),
          ...problems('VALIDATION_FAILED', 'WEBHOOK_NOT_FOUND', 'SERVICE_UNAVAILABLE'),
        },
      },
    },
    async (request) => webhooks.rotateSecret(request.params.id),
  );

  app.post(
    '/webhooks/:id/test',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['webhooks'],
        operationId: 'testWebhook',
        summary: 'Send a test event to a webhook',
        description:
          'A `webhook.test` event (`{ id, type, account: null, mailbox: null, at, webhook }`), signed like every delivery, sent now whatever the webhook\'s `events` filter and whether or not it is enabled. One attempt, not retried: its outcome appears in the webhook\'s deliveries. A 410 to a test is recorded and disables nothing (only a 410 to a real event does).',
        params: WebhookParams,
        response: { 202: TestDelivery, ...problems('VALIDATION_FAILED', 'WEBHOOK_NOT_FOUND', 'SERVICE_UNAVAILABLE') },
      },
    },
    async (request, reply) => {
      const webhook = deliveryWebhook(await webhooks.withSecret(request.params.id));
      return reply.code(202).send({ eventId: deliveries.sendTest(webhook) });
    },
  );

  app.get(
    '/webhooks/:id/deliveries',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['webhooks'],
        operationId: 'listWebhookDeliveries',
        summary: "List a webhook's latest delivery attempts",
        description: `One record per attempt, newest first; the gateway keeps the last ${DELIVERY_RECORDS_KEPT} per webhook.`,
        params: WebhookParams,
        querystring: DeliveriesQuery,
        response: {
          200: success('The latest attempts, newest first', DeliveryList),
          ...problems('VALIDATION_FAILED', 'WEBHOOK_NOT_FOUND', 'SERVICE_UNAVAILABLE'),
        },
      },
    },
    async (request) => ({ deliveries: await webhooks.deliveries(request.params.id, request.query.limit) }),
  );
};
