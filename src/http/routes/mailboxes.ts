import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AccountParams, problems } from '../schemas/common.js';
import { MailboxList, MailboxListQuery } from '../schemas/mailboxes.js';

export const mailboxRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { mail } = app.services;

  app.get(
    '/accounts/:account/mailboxes',
    {
      schema: {
        tags: ['mailboxes'],
        summary: 'List mailboxes',
        description:
          'Every mailbox of the account, INBOX first; parents that exist only as a hierarchy level are listed with `\\Noselect`. A POP3 account has exactly one mailbox, INBOX.',
        params: AccountParams,
        querystring: MailboxListQuery,
        response: { 200: MailboxList, ...problems(400, 401, 404, 422, 502, 503, 504) },
      },
    },
    async (request) => ({ mailboxes: await mail.listMailboxes(request.params.account, request.query.counts) }),
  );
};
