import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AccountParams, UPSTREAM_CODES, problems, success } from '../schemas/common.js';
import { canSeeAccount } from '../../tenants/principal.js';
import { accountCreationLimit, type RateLimitSettings } from '../../tenants/rate-limits.js';
import { AccountCreateBody, AccountList, AccountPatchBody, VerifyQuery } from '../schemas/accounts.js';

export const accountRoutes: FastifyPluginAsyncTypebox<{ limits: RateLimitSettings }> = async (app, options) => {
  const { accounts } = app.services;

  app.post(
    '/accounts',
    {
      config: { access: 'admin', ...accountCreationLimit(options.limits) },
      schema: {
        tags: ['accounts'],
        operationId: 'createAccount',
        summary: 'Register an account',
        description:
          'Saves an IMAP or POP3 account. With `verify=true` (the default) the gateway logs in once first; refused credentials give `UPSTREAM_AUTH_FAILED` and nothing is saved. The mail host must pass the egress policy (`HOST_NOT_ALLOWED` otherwise).',
        querystring: VerifyQuery,
        body: AccountCreateBody,
        response: {
          201: success('The account as saved, without secrets', Type.Ref('Account')),
          ...problems('VALIDATION_FAILED', 'ACCOUNT_EXISTS', 'SERVICE_UNAVAILABLE', ...UPSTREAM_CODES),
        },
      },
    },
    async (request, reply) => {
      const view = await accounts.create(request.body, request.query.verify);
      return reply.code(201).header('location', `/v1/accounts/${encodeURIComponent(view.id)}`).send(view);
    },
  );

  app.get(
    '/accounts',
    {
      config: { access: 'read' },
      schema: {
        tags: ['accounts'],
        operationId: 'listAccounts',
        summary: 'List accounts',
        description: 'Every account, or with an access token the accounts it reaches.',
        response: { 200: success('Every account, without secrets', AccountList), ...problems('SERVICE_UNAVAILABLE') },
      },
    },
    // A token lists only the accounts it may see: the others do not exist for it.
    async (request) => ({ accounts: (await accounts.list()).filter((a) => canSeeAccount(request.principal, a.id)) }),
  );

  app.get(
    '/accounts/:account',
    {
      config: { access: 'read' },
      schema: {
        tags: ['accounts'],
        operationId: 'getAccount',
        summary: 'Get an account',
        description: 'The account without secrets, with `capabilities`: what its protocol and server support.',
        params: AccountParams,
        response: {
          200: success('The account, without secrets, with its capabilities', Type.Ref('Account')),
          ...problems('VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'SERVICE_UNAVAILABLE'),
        },
      },
    },
    async (request) => accounts.getView(request.params.account),
  );

  app.patch(
    '/accounts/:account',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['accounts'],
        operationId: 'updateAccount',
        summary: 'Change an account',
        description:
          'Any field but `id`. When a connection field changes, the new settings are verified by a login first (unless `verify=false`), open sessions are dropped and cached data purged.',
        params: AccountParams,
        querystring: VerifyQuery,
        body: AccountPatchBody,
        response: {
          200: success('The account as changed, without secrets', Type.Ref('Account')),
          ...problems('VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'SERVICE_UNAVAILABLE', ...UPSTREAM_CODES),
        },
      },
    },
    async (request) => accounts.update(request.params.account, request.body, request.query.verify),
  );

  app.delete(
    '/accounts/:account',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['accounts'],
        operationId: 'deleteAccount',
        summary: 'Delete an account',
        description: 'Closes its sessions (LOGOUT / QUIT) and purges its cached data.',
        params: AccountParams,
        response: {
          204: Type.Null({ description: 'Deleted: sessions closed, cached data purged' }),
          ...problems('VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'SERVICE_UNAVAILABLE'),
        },
      },
    },
    async (request, reply) => {
      await accounts.delete(request.params.account);
      return reply.code(204).send(null);
    },
  );
};
