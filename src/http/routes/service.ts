import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

const Health = Type.Object({ status: Type.String({ examples: ['ok'] }) });
const Readiness = Type.Object({
  status: Type.String({ enum: ['ok', 'degraded', 'unavailable'], description: 'degraded: serving without cache' }),
  store: Type.String({ enum: ['ok', 'unavailable'] }),
  cache: Type.String({ enum: ['ok', 'degraded'] }),
});

export const serviceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { accountStore, cache, metrics } = app.services;

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['service'],
        summary: 'Prometheus metrics',
        description:
          'Prometheus text exposition: HTTP latency by route, pool sessions, upstream latency and errors by code, cache hits and misses, Redis degradations. Requires the API key when keys are configured. See docs/operations.md.',
        produces: ['text/plain'],
        response: { 200: Type.Unsafe({ description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }) },
      },
    },
    async (_request, reply) => reply.header('content-type', metrics.contentType).send(await metrics.render()),
  );

  app.get(
    '/health',
    {
      schema: {
        tags: ['service'],
        summary: 'Liveness',
        description: 'Answers while the process runs.',
        security: [],
        response: { 200: Health },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/ready',
    {
      schema: {
        tags: ['service'],
        summary: 'Readiness',
        description:
          '200 while the account store answers (status `degraded` when the cache is unreachable and reads go uncached); 503 while the account store does not.',
        security: [],
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      const store = await accountStore.ping().then(
        () => 'ok' as const,
        () => 'unavailable' as const,
      );
      const cacheHealth = cache.health();
      const status = store !== 'ok' ? 'unavailable' : cacheHealth === 'ok' ? 'ok' : 'degraded';
      return reply.code(store === 'ok' ? 200 : 503).send({ status, store, cache: cacheHealth });
    },
  );
};
