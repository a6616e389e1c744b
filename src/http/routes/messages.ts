import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { contentDisposition } from '../../mail/mime/content-disposition.js';
import { normalizeMailboxPath } from '../../mail/imap/backend.js';
import { rangeSelector } from '../range.js';
import { AttachmentParams, MailboxParams, MessageParams, binaryResponse, problems } from '../schemas/common.js';
import { MessageGetQuery, MessageListQuery } from '../schemas/messages.js';

export const messageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { mail } = app.services;

  app.get(
    '/accounts/:account/mailboxes/:mailbox/messages',
    {
      schema: {
        tags: ['messages'],
        summary: 'List messages, newest first',
        description:
          'Newest first means arrival order (highest UID first; POP3: highest message number first). `nextCursor` continues below the last message of this page and stays correct while mail arrives or is deleted. `state` is also sent as a strong `ETag`: `If-None-Match` with the current state answers 304 with no body.',
        params: MailboxParams,
        querystring: MessageListQuery,
        headers: Type.Object({ 'if-none-match': Type.Optional(Type.String()) }),
        response: {
          200: Type.Ref('MessagePage'),
          304: Type.Null({ description: 'Unchanged since the state in If-None-Match' }),
          ...problems(400, 401, 404, 410, 422, 502, 503, 504),
        },
      },
    },
    async (request, reply) => {
      const { account, mailbox } = request.params;
      const result = await mail.listMessages(account, normalizeMailboxPath(mailbox), {
        limit: request.query.limit,
        cursor: request.query.cursor,
        ifNoneMatch: parseEntityTag(request.headers['if-none-match']),
      });
      void reply.header('etag', `"${result.state}"`).header('cache-control', 'private, no-cache');
      if ('notModified' in result) return reply.code(304).send(null);
      return result;
    },
  );

  app.get(
    '/accounts/:account/mailboxes/:mailbox/messages/:id',
    {
      schema: {
        tags: ['messages'],
        summary: 'Get a message',
        description:
          'The summary plus headers, text and html decoded to UTF-8 from the declared charset, and the attachment list. Reading does not set `\\Seen` unless `markSeen=true`.',
        params: MessageParams,
        querystring: MessageGetQuery,
        response: { 200: Type.Ref('MessageDetail'), ...problems(400, 401, 404, 422, 502, 503, 504) },
      },
    },
    async (request) => {
      const { account, mailbox, id } = request.params;
      return mail.getMessage(account, normalizeMailboxPath(mailbox), id, request.query.markSeen);
    },
  );

  app.get(
    '/accounts/:account/mailboxes/:mailbox/messages/:id/raw',
    {
      schema: {
        tags: ['messages'],
        summary: 'Download the raw message',
        description:
          'Exactly the bytes the server serves for the message (`message/rfc822`), streamed, with `Content-Length`. `Range: bytes=a-b` gives 206 with that slice.',
        params: MessageParams,
        headers: Type.Object({ range: Type.Optional(Type.String({ examples: ['bytes=0-1023'] })) }),
        response: {
          200: binaryResponse('message/rfc822', 'The message, exactly as the server serves it'),
          206: binaryResponse('message/rfc822', 'The requested byte range (Content-Range tells which)'),
          ...problems(400, 401, 404, 416, 422, 502, 503, 504),
        },
      },
    },
    async (request, reply) => {
      const { account, mailbox, id } = request.params;
      const raw = await mail.openRaw(account, normalizeMailboxPath(mailbox), id, rangeSelector(request.headers.range));
      const partial = raw.range.start !== 0 || raw.range.end !== raw.size;
      void reply
        .header('content-type', 'message/rfc822')
        .header('content-length', String(raw.range.end - raw.range.start))
        .header('accept-ranges', 'bytes')
        .header('cache-control', 'private, max-age=0');
      if (partial) {
        void reply.code(206).header('content-range', `bytes ${raw.range.start}-${raw.range.end - 1}/${raw.size}`);
      }
      return reply.send(raw.stream);
    },
  );

  app.get(
    '/accounts/:account/mailboxes/:mailbox/messages/:id/attachments/:attachmentId',
    {
      schema: {
        tags: ['messages'],
        summary: 'Download an attachment',
        description:
          "The attachment's decoded bytes, streamed, with its `Content-Type` and a `Content-Disposition` carrying its filename (RFC 6266; `filename*` for non-ASCII names).",
        params: AttachmentParams,
        response: { 200: binaryResponse('application/octet-stream', "The decoded attachment, sent with the attachment's own Content-Type"), ...problems(400, 401, 404, 422, 502, 503, 504) },
      },
    },
    async (request, reply) => {
      const { account, mailbox, id, attachmentId } = request.params;
      const attachment = await mail.openAttachment(account, normalizeMailboxPath(mailbox), id, attachmentId);
      return reply
        .header('content-type', attachment.contentType)
        .header('content-disposition', contentDisposition('attachment', attachment.filename))
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'private, max-age=0')
        .send(attachment.stream);
    },
  );
};

/** `If-None-Match: "state"` (or a list, or W/ forms) → the state it names, if any. */
function parseEntityTag(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(',')) {
    const match = /^\s*(?:W\/)?"([^"]*)"\s*$/.exec(part);
    if (match?.[1]) return match[1];
  }
  return undefined;
}
