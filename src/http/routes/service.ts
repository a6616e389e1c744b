import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { LastKnownAccountStore } from '../../accounts/last-known-store.js';
import { problems, success } from '../schemas/common.js';

const Health = Type.Object({ status: Type.String({ examples: ['ok'] }) });
const Readiness = Type.Object({
  status: Type.String({ enum: ['ok', 'degraded', 'unavailable'], description: 'degraded: serving without cache' }),
  store: Type.String({ enum: ['ok', 'degraded', 'unavailable'], description: 'degraded: Redis unreachable, accounts served from memory' }),
  cache: Type.String({ enum: ['ok', 'degraded'] }),
});

export const serviceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { accountStore, cache, metrics } = app.services;

  app.get(
    '/metrics',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['service'],
        operationId: 'getMetrics',
        summary: 'Prometheus metrics',
        description:
          'Prometheus text exposition: HTTP latency by route, pool sessions, upstream latency and errors by code, cache hits and misses, Redis degradations. Requires the API key when keys are configured. See docs/operations.md.',
        produces: ['text/plain'],
        response: {
          200: Type.Unsafe({ description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }),
          ...problems(),
        },
      },
    },
    async (_request, reply) => reply.header('content-type', metrics.contentType).send(await metrics.render()),
  );

  app.get(
    '/health',
    {
      config: { access: 'public' },
      schema: {
        tags: ['service'],
        operationId: 'getHealth',
        summary: 'Liveness',
        description: 'Answers while the process runs.',
        security: [],
        response: { 200: success('The process is alive', Health) },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/ready',
    {
      config: { access: 'public' },
      schema: {
        tags: ['service'],
        operationId: 'getReadiness',
        summary: 'Readiness',
        description:
          '200 `ok` while store and cache answer; 200 `degraded` while Redis is unreachable (reads go uncached, accounts this process has read are served from memory, writes answer 503); 503 while a file account store cannot be used.',
        security: [],
        response: {
          200: success('Ready (`ok`), or serving degraded (`degraded`)', Readiness),
          503: success('Not ready: the account store cannot be used', Readiness),
        },
      },
    },
    async (_request, reply) => {
      const reachable = await accountStore.ping().then(
        () => true,
        () => false,
      );
      // A store in Redis that is unreachable still serves the accounts this process knows (degraded);
      // a file store that cannot be used is unavailable.
      const store = reachable ? 'ok' : accountStore instanceof LastKnownAccountStore ? 'degraded' : 'unavailable';
      const cacheHealth = cache.health();
      const status = store === 'unavailable' ? 'unavailable' : store === 'ok' && cacheHealth === 'ok' ? 'ok' : 'degraded';
      return reply.code(status === 'unavailable' ? 503 : 200).send({ status, store, cache: cacheHealth });
    },
  );
};
