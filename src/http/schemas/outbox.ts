/**
 * Sending and the outbox (API.md, Sending). The composer (src/outbox/compose.ts) checks what a
 * schema cannot say well (addresses, header names, base64) and names the field in its 400.
 */
import { Type } from 'typebox';
import { AccountId, AttachmentId, MailboxPath, MessageId, Nullable, StringEnum } from './common.js';
import { NO_CONTROLS, NO_LINE_BREAKS } from './patterns.js';

const AddressInput = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 256, pattern: NO_LINE_BREAKS, examples: ['Bob Example'] })),
    address: Type.String({ minLength: 3, maxLength: 320, examples: ['bob@example.com'] }),
  },
  { additionalProperties: false },
);
const AddressList = Type.Array(AddressInput, { maxItems: 1000 });

const InlineAttachment = Type.Object(
  {
    filename: Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: NO_CONTROLS, examples: ['report.pdf'] })),
    contentType: Type.Optional(Type.String({ minLength: 3, maxLength: 255, pattern: NO_CONTROLS, examples: ['application/pdf'] })),
    content: Type.String({ description: 'The bytes, base64', examples: ['JVBERi0xLjcK'] }),
  },
  { additionalProperties: false, title: 'Inline attachment' },
);
const StoredAttachment = Type.Object(
  { mailbox: MailboxPath, id: MessageId, attachmentId: AttachmentId },
  { additionalProperties: false, title: 'Attachment of a stored message', description: 'Copied from a message in one of the account\'s mailboxes' },
);

export const SendBody = Type.Object(
  {
    from: Type.Optional(Type.Object({ ...AddressInput.properties }, { additionalProperties: false, description: "Default: the account's email" })),
    to: Type.Optional(AddressList),
    cc: Type.Optional(AddressList),
    bcc: Type.Optional({ ...AddressList, description: 'Envelope recipients only: never in the message' }),
    replyTo: Type.Optional(AddressList),
    subject: Type.Optional(Type.String({ maxLength: 998, pattern: NO_LINE_BREAKS, examples: ['Quarterly report'] })),
    text: Type.Optional(Type.String({ examples: ['Hello Bob,\nthe report is attached.'] })),
    html: Type.Optional(Type.String({ examples: ['<p>Hello Bob,</p><p>the report is attached.</p>'] })),
    headers: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 76 }), Type.String({ maxLength: 998, pattern: NO_LINE_BREAKS }), {
        description: 'Extra header fields (not the ones the gateway sets: From, To, Subject, Message-ID, Date, MIME and threading fields)',
        examples: [{ 'X-Campaign': '7' }],
      }),
    ),
    attachments: Type.Optional(Type.Array(Type.Union([InlineAttachment, StoredAttachment]), { maxItems: 100 })),
    reference: Type.Optional(
      Type.Object(
        { mailbox: MailboxPath, id: MessageId, action: StringEnum(['reply', 'replyAll', 'forward'] as const) },
        {
          additionalProperties: false,
          description:
            "The message replied to or forwarded: sets In-Reply-To, References and the `Re:` / `Fwd:` subject; `reply` / `replyAll` fill the recipients when `to` is absent (without the account's own address); `forward` attaches the original as message/rfc822. The original is flagged `\\Answered` or `$Forwarded` once sent.",
        },
      ),
    ),
    saveToSent: Type.Optional(Type.Boolean({ default: true, description: "Append the bytes sent to the `\\Sent` mailbox with `\\Seen` (IMAP accounts)" })),
  },
  {
    additionalProperties: false,
    description: 'A message to compose and send. Non-ASCII subjects, names and file names are encoded (RFC 2047, RFC 2231).',
    examples: [{ to: [{ name: 'Bob', address: 'bob@example.com' }], subject: 'Hello', text: 'Hi Bob!' }],
  },
);

export const SendQuery = Type.Object(
  {
    to: Type.Optional(Type.Array(Type.String({ minLength: 3, maxLength: 320 }), { maxItems: 1000, description: 'Raw messages only: envelope recipients instead of the To header' })),
    cc: Type.Optional(Type.Array(Type.String({ minLength: 3, maxLength: 320 }), { maxItems: 1000, description: 'Raw messages only: instead of the Cc header' })),
    bcc: Type.Optional(Type.Array(Type.String({ minLength: 3, maxLength: 320 }), { maxItems: 1000, description: 'Raw messages only: instead of the Bcc header' })),
  },
  { additionalProperties: false },
);

export const SendHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: NO_CONTROLS,
      description: 'The same key on the same account within 24 h answers the first request\'s result and sends nothing again',
      examples: ['order-7781-confirmation'],
    }),
  ),
});

export const SendReceipt = Type.Object(
  {
    queueId: Type.String({ examples: ['q_4mK2vQx9LbVn0aPeZr1T'] }),
    messageId: Type.String({ description: 'The RFC 5322 Message-ID, `<…>` as in listings', examples: ['<3fJq0x@example.com>'] }),
  },
  { $id: 'SendReceipt' },
);

export const QueueId = Type.String({ pattern: '^q_[A-Za-z0-9_-]{8,64}$', description: 'Outbox entry id from `POST …/send`', examples: ['q_4mK2vQx9LbVn0aPeZr1T'] });
export const OutboxEntryParams = Type.Object({ account: AccountId, queueId: QueueId });

export const OutboxEntry = Type.Object(
  {
    queueId: QueueId,
    messageId: Type.String(),
    status: StringEnum(['queued', 'sending', 'retrying', 'sent', 'failed', 'cancelled'] as const),
    attempts: Type.Integer({ minimum: 0, description: 'SMTP attempts made' }),
    nextAttemptAt: Nullable(Type.String({ format: 'date-time', description: 'When the next attempt is due (queued, retrying)' })),
    recipients: Type.Array(
      Type.Object({
        address: Type.String(),
        status: StringEnum(['pending', 'sent', 'deferred', 'failed'] as const, {
          description: '`sent`: accepted (never sent to again); `deferred`: refused for now (tried again); `failed`: refused for good, or still deferred when the retries ran out',
        }),
        response: Nullable(Type.String({ description: "The server's last reply about this recipient" })),
      }),
    ),
    error: Nullable(Type.String({ description: 'Why the last attempt or the whole send failed' })),
    permanent: Type.Union([Type.Boolean(), Type.Null()], { description: 'True when a refusal (5xx) decided the outcome; null before any attempt' }),
    size: Type.Integer({ minimum: 0, description: 'Bytes of the message as sent' }),
    sentCopy: StringEnum(['pending', 'saved', 'failed', 'skipped'] as const, {
      description: 'The copy in `\\Sent`: `skipped` for POP3 accounts, `saveToSent: false`, or a message nobody accepted',
    }),
    sentCopyError: Nullable(Type.String({ description: 'Why the copy could not be saved (the message itself was sent once)' })),
    createdAt: Type.String({ format: 'date-time' }),
    sentAt: Nullable(Type.String({ format: 'date-time', description: 'When the server first accepted the message' })),
  },
  { $id: 'OutboxEntry' },
);

export const OutboxList = Type.Object({ outbox: Type.Array(Type.Ref('OutboxEntry')) });
