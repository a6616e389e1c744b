import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { problems, success } from '../schemas/common.js';
import { CreatedToken, TokenCreateBody, TokenList, TokenParams } from '../schemas/tokens.js';

export const tokenRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { tokens } = app.services;

  app.post(
    '/tokens',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        operationId: 'createToken',
        summary: 'Create an access token',
        description:
          'A credential for one tenant: the accounts it reaches (others do not exist for it) and the scopes it may use. The token is in this answer only; it is stored as a hash.',
        body: TokenCreateBody,
        response: { 201: CreatedToken, ...problems('VALIDATION_FAILED', 'FORBIDDEN', 'SERVICE_UNAVAILABLE') },
      },
    },
    async (request, reply) => {
      const created = await tokens.create(request.body);
      return reply.code(201).header('location', `/v1/tokens/${created.id}`).send(created);
    },
  );

  app.get(
    '/tokens',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        operationId: 'listTokens',
        summary: 'List access tokens',
        response: { 200: success('Every token, oldest first, never with its value', TokenList), ...problems('FORBIDDEN', 'SERVICE_UNAVAILABLE') },
      },
    },
    async () => ({ tokens: await tokens.list() }),
  );

  app.get(
    '/tokens/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        operationId: 'getToken',
        summary: 'Get an access token',
        params: TokenParams,
        response: { 200: success('The token, never with its value', Type.Ref('Token')), ...problems('VALIDATION_FAILED', 'FORBIDDEN', 'TOKEN_NOT_FOUND', 'SERVICE_UNAVAILABLE') },
      },
    },
    async (request) => tokens.get(request.params.id),
  );

  app.delete(
    '/tokens/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        operationId: 'deleteToken',
        summary: 'Delete an access token',
        description: 'Refused at once by this process and within a second by every other gateway process.',
        params: TokenParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problems('VALIDATION_FAILED', 'FORBIDDEN', 'TOKEN_NOT_FOUND', 'SERVICE_UNAVAILABLE') },
      },
    },
    async (request, reply) => {
      await tokens.delete(request.params.id);
      return reply.code(204).send(null);
    },
  );
};
