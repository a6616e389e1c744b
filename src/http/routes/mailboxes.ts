import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AccountParams, MailboxParams, problems } from '../schemas/common.js';
import { MailboxCreateBody, MailboxList, MailboxListQuery, MailboxPatchBody } from '../schemas/mailboxes.js';

export const mailboxRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { mail } = app.services;

  app.post(
    '/accounts/:account/mailboxes',
    {
      schema: {
        tags: ['mailboxes'],
        summary: 'Create a mailbox',
        description:
          'Creates (and subscribes) the mailbox; missing parents are created as the server does. Non-ASCII names are plain UTF-8. An existing path is 409 MAILBOX_EXISTS. IMAP only.',
        params: AccountParams,
        body: MailboxCreateBody,
        response: { 201: Type.Ref('Mailbox'), ...problems(400, 401, 404, 409, 422, 502, 503, 504) },
      },
    },
    async (request, reply) => {
      const { account } = request.params;
      const mailbox = await mail.createMailbox(account, request.body.path);
      return reply
        .code(201)
        .header('location', `/v1/accounts/${encodeURIComponent(account)}/mailboxes/${encodeURIComponent(mailbox.path)}`)
        .send(mailbox);
    },
  );

  app.patch(
    '/accounts/:account/mailboxes/:mailbox',
    {
      schema: {
        tags: ['mailboxes'],
        summary: 'Rename or (un)subscribe a mailbox',
        description:
          '`{ "path": "new/path" }` renames, `{ "subscribed": false }` unsubscribes. INBOX cannot be renamed (400); a taken new path is 409 MAILBOX_EXISTS. IMAP only.',
        params: MailboxParams,
        body: MailboxPatchBody,
        response: { 200: Type.Ref('Mailbox'), ...problems(400, 401, 404, 409, 422, 502, 503, 504) },
      },
    },
    async (request) => {
      const { account, mailbox } = request.params;
      return mail.updateMailbox(account, mailbox, request.body);
    },
  );

  app.delete(
    '/accounts/:account/mailboxes/:mailbox',
    {
      schema: {
        tags: ['mailboxes'],
        summary: 'Delete a mailbox',
        description: 'Deletes the mailbox and the messages in it. INBOX cannot be deleted (400). IMAP only.',
        params: MailboxParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problems(400, 401, 404, 422, 502, 503, 504) },
      },
    },
    async (request, reply) => {
      const { account, mailbox } = request.params;
      await mail.deleteMailbox(account, mailbox);
      return reply.code(204).send(null);
    },
  );

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
