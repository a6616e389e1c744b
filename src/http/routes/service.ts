import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

const Health = Type.Object({ status: Type.String({ examples: ['ok'] }) });
const Readiness = Type.Object({
  status: Type.String({ enum: ['ok', 'degraded', 'unavailable'], description: 'degraded: serving without cache' }),
  store: Type.String({ enum: ['ok', 'unavailable'] }),
  cache: Type.String({ enum: ['ok', 'degraded'] }),
});

export const serviceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { accountStore, cache } = app.services;

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
