import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError, type ErrorCode } from '../../errors.js';
import type { OutboxService, SendInput } from '../../outbox/outbox-service.js';
import type { SendBody as ComposeBody } from '../../outbox/compose.js';
import { AccountParams, problems, success } from '../schemas/common.js';
import { OutboxEntryParams, OutboxList, SendBody, SendHeaders, SendQuery } from '../schemas/outbox.js';
import type { OutboxEntry } from '../../outbox/types.js';
import { parseStreamedJson, type JsonPath } from '../../util/streamed-json.js';

/** JSON bodies up to this size are collected and parsed whole; larger ones are parsed as they arrive. */
const STREAMED_JSON_ABOVE_BYTES = 1024 * 1024;

/** `attachments[i].content` of a send's JSON body: base64, decoded while the body is read. */
const isAttachmentContent = (path: JsonPath): boolean => path.length === 3 && path[0] === 'attachments' && typeof path[1] === 'number' && path[2] === 'content';

const ON_ACCOUNT: ErrorCode[] = ['VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'SERVICE_UNAVAILABLE'];

export interface OutboxRouteOptions {
  outbox: OutboxService;
  /** MAX_UPLOAD_BYTES: the largest message; a JSON body may be a third larger (base64). */
  maxUploadBytes: number;
}

export const outboxRoutes: FastifyPluginAsyncTypebox<OutboxRouteOptions> = async (app, options) => {
  const { outbox } = options;
  // Base64 is 4/3 of the bytes; the composed message is checked against MAX_UPLOAD_BYTES itself.
  const jsonLimit = Math.ceil((options.maxUploadBytes * 4) / 3) + 1024 * 1024;

  // A message to send as it is arrives as its own bytes, kept exactly.
  app.addContentTypeParser('message/rfc822', { parseAs: 'buffer', bodyLimit: options.maxUploadBytes }, (_request, body, done) => done(null, body));

  // JSON bodies: small ones as Fastify parses every JSON body; large ones (attachments in base64) as
  // they arrive, each attachment's content decoded piece by piece and never held as text
  // (src/util/streamed-json.ts), so a 10 MB attachment costs the gateway about one copy of it.
  const parseSmallJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', (request, payload, done) => {
    const length = Number(request.headers['content-length']);
    if (length > jsonLimit) {
      payload.resume();
      return done(new GatewayError('PAYLOAD_TOO_LARGE', `The request body is larger than this endpoint accepts (${jsonLimit} bytes)`), undefined);
    }
    if (Number.isFinite(length) && length <= STREAMED_JSON_ABOVE_BYTES) {
      const chunks: Buffer[] = [];
      payload.on('data', (chunk: Buffer) => chunks.push(chunk));
      payload.on('error', (err) => done(err, undefined));
      payload.on('end', () => parseSmallJson(request, Buffer.concat(chunks).toString('utf8'), done));
      return;
    }
    parseStreamedJson(payload, { limitBytes: jsonLimit, isBase64: isAttachmentContent }).then(
      (body) => done(null, body),
      (err: Error) => done(err, undefined),
    );
  });

  app.post(
    '/accounts/:account/send',
    {
      config: { access: 'send' },
      bodyLimit: jsonLimit,
      schema: {
        tags: ['sending'],
        operationId: 'sendMessage',
        summary: 'Send a message',
        description:
          "Queues a message for SMTP submission and answers at once with its outbox `queueId` and `messageId`. A JSON body is composed (addresses, subject, text, html, attachments, `reference` for replies and forwards); a `message/rfc822` body is sent as it is, recipients from its To/Cc/Bcc unless the `to`/`cc`/`bcc` query parameters say otherwise, Bcc removed, a Message-ID added when it has none. The outcome is the outbox entry's `status` and the event `message.sent` or `message.failed`. With `Idempotency-Key`, the same key on this account within 24 h answers the first result (`Idempotent-Replayed: true`) and sends nothing again. Larger than MAX_UPLOAD_BYTES once composed: 413.",
        params: AccountParams,
        querystring: SendQuery,
        headers: SendHeaders,
        body: {
          content: {
            'application/json': { schema: SendBody },
            'message/rfc822': { schema: Type.Unsafe<Buffer>({ type: 'string', format: 'binary', description: 'The RFC 5322 message, sent as it is' }) },
          },
        } as unknown as typeof SendBody,
        response: {
          202: success('Queued: the outbox entry and the Message-ID', Type.Ref('SendReceipt')),
          ...problems(
            ...ON_ACCOUNT,
            'SMTP_NOT_CONFIGURED',
            'MAILBOX_NOT_FOUND',
            'MESSAGE_NOT_FOUND',
            'ATTACHMENT_NOT_FOUND',
            'PAYLOAD_TOO_LARGE',
            'UNSUPPORTED_MEDIA_TYPE',
            'UPSTREAM_AUTH_FAILED',
            'UPSTREAM_ERROR',
            'POOL_EXHAUSTED',
            'UPSTREAM_TIMEOUT',
          ),
        },
      },
    },
    async (request, reply) => {
      const { account } = request.params;
      const body: unknown = request.body;
      const { to, cc, bcc } = request.query;
      let input: SendInput;
      if (Buffer.isBuffer(body)) {
        if (body.length === 0) throw new GatewayError('VALIDATION_FAILED', 'body must be a non-empty message/rfc822 document');
        input = { kind: 'raw', raw: body, ...(to ? { to } : {}), ...(cc ? { cc } : {}), ...(bcc ? { bcc } : {}) };
      } else {
        if (to !== undefined || cc !== undefined || bcc !== undefined) {
          throw new GatewayError('VALIDATION_FAILED', 'querystring/to, cc and bcc are for message/rfc822 bodies; put recipients in the JSON body');
        }
        input = { kind: 'json', body: body as ComposeBody };
      }
      const { receipt, replayed } = await outbox.send(account, input, request.headers['idempotency-key']);
      if (replayed) void reply.header('idempotent-replayed', 'true');
      return reply
        .code(202)
        .header('location', `/v1/accounts/${encodeURIComponent(account)}/outbox/${encodeURIComponent(receipt.queueId)}`)
        .send(receipt);
    },
  );

  app.get(
    '/accounts/:account/outbox',
    {
      config: { access: 'read' },
      schema: {
        tags: ['sending'],
        operationId: 'listOutbox',
        summary: 'List the outbox',
        description: 'Every entry of this account still kept, newest first: queued, being sent, waiting for a retry, and final ones for `OUTBOX_KEEP_HOURS` (default a week).',
        params: AccountParams,
        response: { 200: success("The account's outbox entries", OutboxList), ...problems(...ON_ACCOUNT) },
      },
    },
    async (request) => ({ outbox: (await outbox.list(request.params.account)).map(view) }),
  );

  app.get(
    '/accounts/:account/outbox/:queueId',
    {
      config: { access: 'read' },
      schema: {
        tags: ['sending'],
        operationId: 'getOutboxEntry',
        summary: 'Get an outbox entry',
        description: "Its status, attempts, each recipient's outcome and the copy in Sent.",
        params: OutboxEntryParams,
        response: { 200: success('The entry', Type.Ref('OutboxEntry')), ...problems(...ON_ACCOUNT, 'OUTBOX_ENTRY_NOT_FOUND') },
      },
    },
    async (request) => view(await outbox.get(request.params.account, request.params.queueId)),
  );

  app.delete(
    '/accounts/:account/outbox/:queueId',
    {
      config: { access: 'send' },
      schema: {
        tags: ['sending'],
        operationId: 'cancelOutboxEntry',
        summary: 'Cancel a message not yet sent',
        description: 'A `queued` or `retrying` entry becomes `cancelled` and is never sent. One being sent or already final cannot be cancelled: 404 (its detail says which).',
        params: OutboxEntryParams,
        response: {
          204: Type.Null({ description: 'Cancelled: nothing will be sent' }),
          ...problems(...ON_ACCOUNT, 'OUTBOX_ENTRY_NOT_FOUND'),
        },
      },
    },
    async (request, reply) => {
      await outbox.cancel(request.params.account, request.params.queueId);
      return reply.code(204).send(null);
    },
  );
};

/** What the API shows of an entry (the store's bookkeeping fields stay inside). */
function view(entry: OutboxEntry): Omit<OutboxEntry, 'account' | 'envelopeFrom' | 'markOriginal' | 'updatedAt'> {
  const { account: _account, envelopeFrom: _from, markOriginal: _mark, updatedAt: _updated, ...shown } = entry;
  return shown;
}
