import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AccountParams, MailboxParams, UPSTREAM_CODES, problems, success } from '../schemas/common.js';
import { MailboxCreateBody, MailboxList, MailboxListQuery, MailboxPatchBody } from '../schemas/mailboxes.js';

export const mailboxRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { mail } = app.services;

  app.post(
    '/accounts/:account/mailboxes',
    {
      config: { access: 'write' },
      schema: {
        tags: ['mailboxes'],
        operationId: 'createMailbox',
        summary: 'Create a mailbox',
        description:
          'Creates (and subscribes) the mailbox; missing parents are created as the server does. Non-ASCII names are plain UTF-8. An existing path is 409 MAILBOX_EXISTS. IMAP only.',
        params: AccountParams,
        body: MailboxCreateBody,
        response: {
          201: success('The mailbox as created', Type.Ref('Mailbox')),
          ...problems('VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'MAILBOX_EXISTS', 'NOT_SUPPORTED_BY_PROTOCOL', 'SERVICE_UNAVAILABLE', ...UPSTREAM_CODES),
        },
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
      config: { access: 'write' },
      schema: {
        tags: ['mailboxes'],
        operationId: 'updateMailbox',
        summary: 'Rename or (un)subscribe a mailbox',
        description:
          '`{ "path": "new/path" }` renames, `{ "subscribed": false }` unsubscribes. INBOX cannot be renamed (400); a taken new path is 409 MAILBOX_EXISTS. IMAP only.',
        params: MailboxParams,
        body: MailboxPatchBody,
        response: {
          200: success('The mailbox as it is now (at its new path after a rename)', Type.Ref('Mailbox')),
          ...problems(
            'VALIDATION_FAILED',
            'ACCOUNT_NOT_FOUND',
            'MAILBOX_NOT_FOUND',
            'MAILBOX_EXISTS',
            'NOT_SUPPORTED_BY_PROTOCOL',
            'SERVICE_UNAVAILABLE',
            ...UPSTREAM_CODES,
          ),
        },
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
      config: { access: 'write' },
      schema: {
        tags: ['mailboxes'],
        operationId: 'deleteMailbox',
        summary: 'Delete a mailbox',
        description: 'Deletes the mailbox and the messages in it. INBOX cannot be deleted (400). IMAP only.',
        params: MailboxParams,
        response: {
          204: Type.Null({ description: 'Deleted, with the messages in it' }),
          ...problems('VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'MAILBOX_NOT_FOUND', 'NOT_SUPPORTED_BY_PROTOCOL', 'SERVICE_UNAVAILABLE', ...UPSTREAM_CODES),
        },
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
      config: { access: 'read' },
      schema: {
        tags: ['mailboxes'],
        operationId: 'listMailboxes',
        summary: 'List mailboxes',
        description:
          'Every mailbox of the account, INBOX first; parents that exist only as a hierarchy level are listed with `\\Noselect`. A POP3 account has exactly one mailbox, INBOX.',
        params: AccountParams,
        querystring: MailboxListQuery,
        response: {
          200: success('Every mailbox of the account, INBOX first', MailboxList),
          ...problems('VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'SERVICE_UNAVAILABLE', ...UPSTREAM_CODES),
        },
      },
    },
    async (request) => ({ mailboxes: await mail.listMailboxes(request.params.account, request.query.counts) }),
  );
};
