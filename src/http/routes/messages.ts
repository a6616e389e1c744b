import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../../errors.js';
import { contentDisposition } from '../content-disposition.js';
import { parseIfMatch } from '../if-match.js';
import { rangeSelector } from '../range.js';
import { AttachmentParams, MailboxParams, MessageParams, UPSTREAM_CODES, binaryResponse, problems, success } from '../schemas/common.js';
import type { ErrorCode } from '../../errors.js';
import {
  AppendQuery,
  ChangesQuery,
  FlagPatchBody,
  IfMatchHeaders,
  MessageFilterQuery,
  MessageGetQuery,
  MessageListQuery,
  TransferBody,
} from '../schemas/messages.js';
import { pickFilters } from '../../mail/filters.js';

/** What every call on a mailbox can answer; a call on one message adds MESSAGE_NOT_FOUND. */
const ON_MAILBOX: ErrorCode[] = ['VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'MAILBOX_NOT_FOUND', 'SERVICE_UNAVAILABLE', ...UPSTREAM_CODES];
const ON_MESSAGE: ErrorCode[] = [...ON_MAILBOX, 'MESSAGE_NOT_FOUND'];

export const messageRoutes: FastifyPluginAsyncTypebox<{ maxUploadBytes: number }> = async (app, options) => {
  const { mail } = app.services;

  // A message to APPEND arrives as its own bytes, kept exactly as sent.
  app.addContentTypeParser('message/rfc822', { parseAs: 'buffer', bodyLimit: options.maxUploadBytes }, (_request, body, done) =>
    done(null, body),
  );

  app.get(
    '/accounts/:account/mailboxes/:mailbox/messages',
    {
      config: { access: 'read' },
      schema: {
        tags: ['messages'],
        operationId: 'listMessages',
        summary: 'List messages, newest first',
        description:
          'Newest first means arrival order (highest UID first; POP3: highest message number first). `nextCursor` continues below the last message of this page and stays correct while mail arrives or is deleted. `state` is also sent as a strong `ETag`: `If-None-Match` with the current state answers 304 with no body. With CONDSTORE the state is that of the mailbox (UIDVALIDITY, UIDNEXT, EXISTS, HIGHESTMODSEQ); without it (Courier) it also digests the UIDs and flags of the page, and an unfiltered page is checked (for 304 or a cached copy) with one FETCH of UID and FLAGS over it (after the SEARCH that finds the anchor of a cursor); a filtered one is fetched each time. Filters (IMAP only; combined with AND) narrow the listing and `total` counts the matches; on POP3 a filter answers 422 NOT_SUPPORTED_BY_PROTOCOL.',
        params: MailboxParams,
        querystring: Type.Object({ ...MessageListQuery.properties, ...MessageFilterQuery }),
        headers: Type.Object({ 'if-none-match': Type.Optional(Type.String()) }),
        response: {
          200: success('One page of summaries, newest first, with the cursor of the next page and the mailbox state', Type.Ref('MessagePage')),
          304: Type.Null({ description: 'Unchanged since the state in If-None-Match' }),
          ...problems(...ON_MAILBOX, 'STATE_TOO_OLD', 'NOT_SUPPORTED_BY_PROTOCOL'),
        },
      },
    },
    async (request, reply) => {
      const { account, mailbox } = request.params;
      const result = await mail.listMessages(account, mailbox, {
        limit: request.query.limit,
        cursor: request.query.cursor,
        filters: pickFilters(request.query),
        ifNoneMatch: parseEntityTag(request.headers['if-none-match']),
      });
      void reply.header('etag', `"${result.state}"`).header('cache-control', 'private, no-cache');
      // No body, and so no Content-Length: a 304 describes the representation the client holds (RFC 9110 §15.4.5).
      // (Fastify sends no Content-Length for a 304 only when there is no payload at all, not even `null`.)
      if ('notModified' in result) return reply.code(304).send(undefined as unknown as null);
      // A page from the listing cache is already the JSON this route's schema produces.
      if ('json' in result) return reply.type('application/json; charset=utf-8').send(result.json);
      return result;
    },
  );

  app.get(
    '/accounts/:account/mailboxes/:mailbox/changes',
    {
      config: { access: 'read' },
      schema: {
        tags: ['messages'],
        operationId: 'getChanges',
        summary: 'Changes since a state (delta sync)',
        description:
          'Ids of messages created and destroyed, and summaries of messages updated, since `since` (a listing\'s `state` or an earlier answer\'s). From CONDSTORE/QRESYNC (RFC 7162). A state from before a UIDVALIDITY change, or one without MODSEQ, is 410 STATE_TOO_OLD: list again. IMAP with QRESYNC only (422 otherwise).',
        params: MailboxParams,
        querystring: ChangesQuery,
        response: {
          200: success('What changed since the state, and the state to ask from next', Type.Ref('Changes')),
          ...problems(...ON_MAILBOX, 'STATE_TOO_OLD', 'NOT_SUPPORTED_BY_PROTOCOL'),
        },
      },
    },
    async (request) => {
      const { account, mailbox } = request.params;
      return mail.changesSince(account, mailbox, request.query.since, request.query.limit);
    },
  );

  app.get(
    '/accounts/:account/mailboxes/:mailbox/messages/:id',
    {
      config: { access: 'read' },
      schema: {
        tags: ['messages'],
        operationId: 'getMessage',
        summary: 'Get a message',
        description:
          'The summary plus headers, text and html decoded to UTF-8 from the declared charset, and the attachment list. Reading does not set `\\Seen` unless `markSeen=true`.',
        params: MessageParams,
        querystring: MessageGetQuery,
        response: { 200: success('The message: summary, headers, decoded text and html, attachments', Type.Ref('MessageDetail')), ...problems(...ON_MESSAGE) },
      },
    },
    async (request) => {
      const { account, mailbox, id } = request.params;
      return mail.getMessage(account, mailbox, id, request.query.markSeen);
    },
  );

  app.get(
    '/accounts/:account/mailboxes/:mailbox/messages/:id/raw',
    {
      config: { access: 'read' },
      schema: {
        tags: ['messages'],
        operationId: 'getRawMessage',
        summary: 'Download the raw message',
        description:
          'Exactly the bytes the server serves for the message (`message/rfc822`), streamed, with `Content-Length` and `Content-Disposition: attachment; filename="<id>.eml"`. `Range: bytes=a-b` gives 206 with that slice.',
        params: MessageParams,
        headers: Type.Object({ range: Type.Optional(Type.String({ examples: ['bytes=0-1023'] })) }),
        response: {
          200: binaryResponse('message/rfc822', 'The message, exactly as the server serves it'),
          206: binaryResponse('message/rfc822', 'The requested byte range (Content-Range tells which)'),
          ...problems(...ON_MESSAGE, 'RANGE_NOT_SATISFIABLE'),
        },
      },
    },
    async (request, reply) => {
      const { account, mailbox, id } = request.params;
      const raw = await mail.openRaw(account, mailbox, id, rangeSelector(request.headers.range));
      const partial = raw.range.start !== 0 || raw.range.end !== raw.size;
      void reply
        .header('content-type', 'message/rfc822')
        .header('content-length', String(raw.range.end - raw.range.start))
        .header('accept-ranges', 'bytes')
        .header('cache-control', 'private, max-age=0')
        // Saved as a file a mail client opens (`<id>.eml`), by browsers, Swagger UI and `curl -OJ`.
        .header('content-disposition', contentDisposition('attachment', `${id}.eml`))
        .header('x-content-type-options', 'nosniff');
      if (partial) {
        void reply.code(206).header('content-range', `bytes ${raw.range.start}-${raw.range.end - 1}/${raw.size}`);
      }
      return reply.send(raw.stream);
    },
  );

  app.get(
    '/accounts/:account/mailboxes/:mailbox/messages/:id/attachments/:attachmentId',
    {
      config: { access: 'read' },
      schema: {
        tags: ['messages'],
        operationId: 'getAttachment',
        summary: 'Download an attachment',
        description:
          "The attachment's decoded bytes (base64 and quoted-printable undone), streamed, with its `Content-Type` and a `Content-Disposition` carrying its filename (RFC 6266; `filename*` for non-ASCII names). A part in a transfer encoding the gateway does not know (`x-uuencode`, say) is sent as it is, with `Content-Transfer-Encoding: <that encoding>` saying so.",
        params: AttachmentParams,
        response: {
          200: binaryResponse('application/octet-stream', "The decoded attachment, sent with the attachment's own Content-Type"),
          ...problems(...ON_MESSAGE, 'ATTACHMENT_NOT_FOUND'),
        },
      },
    },
    async (request, reply) => {
      const { account, mailbox, id, attachmentId } = request.params;
      const attachment = await mail.openAttachment(account, mailbox, id, attachmentId);
      // Still encoded (an encoding the gateway does not know): the MIME header says which (RFC 2045 §6).
      if (attachment.transferEncoding !== undefined) void reply.header('content-transfer-encoding', attachment.transferEncoding);
      return reply
        .header('content-type', attachment.contentType)
        .header('content-disposition', contentDisposition('attachment', attachment.filename))
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'private, max-age=0')
        .send(attachment.stream);
    },
  );
  app.post(
    '/accounts/:account/mailboxes/:mailbox/messages',
    {
      config: { access: 'write' },
      bodyLimit: options.maxUploadBytes,
      schema: {
        tags: ['messages'],
        operationId: 'appendMessage',
        summary: 'Add a message (APPEND)',
        description:
          'Stores the request body (`Content-Type: message/rfc822`) in the mailbox exactly as sent, with the given flags. Larger than MAX_UPLOAD_BYTES (default 25 MB): 413. Answers the new message\'s id. IMAP only.',
        params: MailboxParams,
        querystring: AppendQuery,
        consumes: ['message/rfc822'],
        body: Type.Unsafe<Buffer>({ type: 'string', format: 'binary', description: 'The RFC 5322 message' }),
        response: {
          201: success('Where the message was stored: its id and mailbox', Type.Ref('MessageLocation')),
          ...problems(...ON_MAILBOX, 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'NOT_SUPPORTED_BY_PROTOCOL', 'FLAG_NOT_ALLOWED'),
        },
      },
    },
    async (request, reply) => {
      const { account, mailbox } = request.params;
      const content = request.body;
      // Another parser (JSON) took the body: the message was sent with the wrong Content-Type.
      if (!Buffer.isBuffer(content)) {
        throw new GatewayError('UNSUPPORTED_MEDIA_TYPE', `This endpoint takes a body of type message/rfc822, not ${request.headers['content-type'] ?? 'none'}`);
      }
      if (content.length === 0) throw new GatewayError('VALIDATION_FAILED', 'body must be a non-empty message/rfc822 document');
      const location = await mail.appendMessage(account, mailbox, content, request.query.flags ?? []);
      return reply.code(201).header('location', messageUrl(account, location)).send(location);
    },
  );

  app.patch(
    '/accounts/:account/mailboxes/:mailbox/messages/:id',
    {
      config: { access: 'write' },
      schema: {
        tags: ['messages'],
        operationId: 'updateMessageFlags',
        summary: 'Change flags',
        description:
          'Sets or clears `\\Seen`, `\\Flagged`, `\\Answered`, `\\Draft` and adds or removes keywords; answers the updated summary. A keyword the mailbox does not accept (no `\\*` in its PERMANENTFLAGS) is 422 FLAG_NOT_ALLOWED, never dropped silently. IMAP only.',
        params: MessageParams,
        headers: IfMatchHeaders,
        body: FlagPatchBody,
        response: {
          200: success('The summary with the flags as they are now', Type.Ref('MessageSummary')),
          ...problems(...ON_MESSAGE, 'PRECONDITION_FAILED', 'FLAG_NOT_ALLOWED', 'NOT_SUPPORTED_BY_PROTOCOL'),
        },
      },
    },
    async (request) => {
      const { account, mailbox, id } = request.params;
      return mail.updateFlags(account, mailbox, id, request.body, parseIfMatch(request.headers['if-match']));
    },
  );

  app.post(
    '/accounts/:account/mailboxes/:mailbox/messages/:id/move',
    {
      config: { access: 'write' },
      schema: {
        tags: ['messages'],
        operationId: 'moveMessage',
        summary: 'Move a message',
        description:
          'Moves the message to `destination` (MOVE where the server has it, else COPY + UID EXPUNGE of that message only) and answers its new id there. A missing source message is 404 MESSAGE_NOT_FOUND (checked first); a missing destination 404 MAILBOX_NOT_FOUND, with nothing moved. IMAP only.',
        params: MessageParams,
        headers: IfMatchHeaders,
        body: TransferBody,
        response: {
          200: success('The message in its new mailbox: its new id there', Type.Ref('MessageLocation')),
          ...problems(...ON_MESSAGE, 'PRECONDITION_FAILED', 'NOT_SUPPORTED_BY_PROTOCOL'),
        },
      },
    },
    async (request) => {
      const { account, mailbox, id } = request.params;
      return mail.moveMessage(account, mailbox, id, request.body.destination, parseIfMatch(request.headers['if-match']));
    },
  );

  app.post(
    '/accounts/:account/mailboxes/:mailbox/messages/:id/copy',
    {
      config: { access: 'write' },
      schema: {
        tags: ['messages'],
        operationId: 'copyMessage',
        summary: 'Copy a message',
        description:
          'Copies the message to `destination` and answers the copy\'s id. Missing source: 404 MESSAGE_NOT_FOUND (checked first); missing destination: 404 MAILBOX_NOT_FOUND. IMAP only.',
        params: MessageParams,
        body: TransferBody,
        response: {
          201: success("The copy: its id and mailbox", Type.Ref('MessageLocation')),
          ...problems(...ON_MESSAGE, 'NOT_SUPPORTED_BY_PROTOCOL'),
        },
      },
    },
    async (request, reply) => {
      const { account, mailbox, id } = request.params;
      const location = await mail.copyMessage(account, mailbox, id, request.body.destination);
      return reply.code(201).header('location', messageUrl(account, location)).send(location);
    },
  );

  app.delete(
    '/accounts/:account/mailboxes/:mailbox/messages/:id',
    {
      config: { access: 'write' },
      schema: {
        tags: ['messages'],
        operationId: 'deleteMessage',
        summary: 'Delete a message',
        description:
          'Removes exactly this message. IMAP: `\\Deleted` and UID EXPUNGE of its UID only (a server without UIDPLUS answers 422, as a plain EXPUNGE would remove other messages too). POP3: DELE, committed by QUIT before the answer.',
        params: MessageParams,
        headers: IfMatchHeaders,
        response: {
          204: Type.Null({ description: 'Deleted' }),
          ...problems(...ON_MESSAGE, 'PRECONDITION_FAILED', 'NOT_SUPPORTED_BY_PROTOCOL'),
        },
      },
    },
    async (request, reply) => {
      const { account, mailbox, id } = request.params;
      await mail.deleteMessage(account, mailbox, id, parseIfMatch(request.headers['if-match']));
      return reply.code(204).send(null);
    },
  );
};

function messageUrl(account: string, location: { id: string; mailbox: string }): string {
  return `/v1/accounts/${encodeURIComponent(account)}/mailboxes/${encodeURIComponent(location.mailbox)}/messages/${location.id}`;
}

/** `If-None-Match: "state"` (or a list, or W/ forms) → the state it names, if any. */
function parseEntityTag(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(',')) {
    const match = /^\s*(?:W\/)?"([^"]*)"\s*$/.exec(part);
    if (match?.[1]) return match[1];
  }
  return undefined;
}
