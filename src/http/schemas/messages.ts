import { Type } from 'typebox';
import { Nullable } from './common.js';
import { DAY_FROM_1900, NO_CONTROLS } from './patterns.js';

const AddressList = Type.Array(Type.Ref('Address'));

const summaryProperties = {
  id: Type.String({ description: 'Opaque id, stable while the message stays in this mailbox', examples: ['AV9B3wAAAAAB'] }),
  uid: Type.Optional(Type.Integer({ description: 'IMAP UID (IMAP accounts only)', examples: [1] })),
  messageId: Nullable(Type.String({ examples: ['<cafe@example.com>'] })),
  subject: Nullable(Type.String({ examples: ['Quarterly report'] })),
  from: AddressList,
  to: AddressList,
  cc: AddressList,
  date: Nullable(Type.String({ format: 'date-time', description: 'The Date header, as the sender set it' })),
  receivedAt: Nullable(Type.String({ format: 'date-time', description: 'When the server received it (IMAP INTERNALDATE)' })),
  size: Type.Integer({ description: 'Size of the raw message in bytes' }),
  flags: Type.Array(Type.String(), { description: 'IMAP flags and keywords; `\\Recent` is never reported', examples: [['\\Seen']] }),
  seen: Type.Boolean(),
  flagged: Type.Boolean(),
  hasAttachments: Nullable(
    Type.Boolean({
      description:
        'Listings: from the MIME structure (IMAP), null where that costs a body fetch (POP3 before the headers are cached). Message view: always set.',
    }),
  ),
  preview: Nullable(
    Type.String({
      description: 'Start of the text. Null in listings (it would cost a body fetch per message); set in the message view.',
    }),
  ),
};

export const MessageSummary = Type.Object(summaryProperties, { $id: 'MessageSummary' });

export const MessageListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50, description: 'Page size' }),
  cursor: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 512,
      description: 'The `nextCursor` of the previous page: continues below its last message, correct while mail arrives or is deleted',
    }),
  ),
});

export const MessagePage = Type.Object(
  {
    messages: Type.Array(Type.Ref('MessageSummary')),
    nextCursor: Nullable(Type.String({ description: 'Cursor of the next (older) page; null on the last page' })),
    total: Type.Integer({ description: 'Messages in the mailbox' }),
    state: Type.String({ description: 'Mailbox state; changes whenever the mailbox does. Also sent as a strong ETag.' }),
  },
  { $id: 'MessagePage' },
);

export const MessageGetQuery = Type.Object({
  markSeen: Type.Boolean({ default: false, description: 'Set `\\Seen` on the message (reading never does otherwise)' }),
});

export const Attachment = Type.Object(
  {
    id: Type.String({ description: "Attachment id: its MIME part number in the gateway's own parse of the message (which names the same part as the server's numbering on well-formed MIME, and may not on broken MIME: the download always serves the part this id names here)", examples: ['2'] }),
    filename: Nullable(Type.String({ examples: ['report.pdf'] })),
    contentType: Type.String({ examples: ['application/pdf'] }),
    size: Type.Integer({ description: 'Decoded size in bytes (transfer encoding undone): exactly the number of bytes the attachment download serves' }),
    disposition: Type.String({ enum: ['attachment', 'inline'] }),
    contentId: Nullable(Type.String({ description: 'Content-ID, for inline images referenced as cid: in the HTML' })),
  },
  { $id: 'Attachment' },
);

export const MessageDetail = Type.Object(
  {
    ...summaryProperties,
    headers: Type.Array(Type.Object({ key: Type.String({ examples: ['subject'] }), value: Type.String() }), {
      description: 'Every header in order; keys lower-cased, values unfolded and decoded to UTF-8',
    }),
    text: Nullable(Type.String({ description: "Plain-text body, decoded to UTF-8 from its declared charset. A text part the sender marks `Content-Disposition: inline` (or gives no disposition) is body and joins this text even when it names a file (RFC 2183 §2.1: shown as part of the message; the name only suggests one for saving): it is not among `attachments`, and the listing's `hasAttachments` agrees" })),
    html: Nullable(Type.String({ description: 'HTML body, decoded to UTF-8 from its declared charset' })),
    inReplyTo: Nullable(Type.String()),
    references: Type.Array(Type.String()),
    attachments: Type.Array(Type.Ref('Attachment')),
  },
  { $id: 'MessageDetail' },
);

/** An IMAP flag a client may set: the four settable system flags, or a keyword (an IMAP atom). */
export const Flag = Type.String({
  pattern: '^(\\\\(Seen|Flagged|Answered|Draft|seen|flagged|answered|draft)|[^\\s(){%*"\\\\\\]\\x00-\\x1f\\x7f]{1,128})$',
  description: 'A system flag (`\\Seen`, `\\Flagged`, `\\Answered`, `\\Draft`) or a keyword such as `$Work`',
  examples: ['$Work'],
});

export const MessageFilterQuery = {
  from: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: NO_CONTROLS, description: 'From header contains (IMAP only)' })),
  to: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: NO_CONTROLS, description: 'To header contains (IMAP only)' })),
  subject: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: NO_CONTROLS, description: 'Subject contains (IMAP only)' })),
  text: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: NO_CONTROLS, description: 'Headers or body contain (IMAP only)' })),
  since: Type.Optional(
    Type.String({
      format: 'date',
      pattern: DAY_FROM_1900,
      description:
        'Received on or after this day, `YYYY-MM-DD`, from 1900-01-01: IMAP SINCE on the arrival date (INTERNALDATE), a calendar day as the server reckons it (RFC 9051 §6.4.4), never a count of seconds from now, so repeated calls give the same answer',
    }),
  ),
  before: Type.Optional(
    Type.String({ format: 'date', pattern: DAY_FROM_1900, description: 'Received before this day, `YYYY-MM-DD`, from 1900-01-01: IMAP BEFORE on the arrival date, by calendar day like `since`' }),
  ),
  seen: Type.Optional(Type.Boolean({ description: 'Only seen (true) or unseen (false) messages' })),
  flagged: Type.Optional(Type.Boolean()),
  answered: Type.Optional(Type.Boolean()),
  larger: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, description: 'Larger than this many bytes' })),
  smaller: Type.Optional(Type.Integer({ minimum: 1, maximum: 4294967295, description: 'Smaller than this many bytes' })),
};

export const FlagPatchBody = Type.Object(
  {
    seen: Type.Optional(Type.Boolean()),
    flagged: Type.Optional(Type.Boolean()),
    answered: Type.Optional(Type.Boolean()),
    draft: Type.Optional(Type.Boolean()),
    addFlags: Type.Optional(Type.Array(Flag, { maxItems: 64, uniqueItems: true })),
    removeFlags: Type.Optional(Type.Array(Flag, { maxItems: 64, uniqueItems: true })),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'Flags to set (true) or clear (false), keywords to add or remove',
    examples: [{ seen: true, flagged: false, addFlags: ['$Work'] }],
  },
);

export const TransferBody = Type.Object(
  { destination: Type.String({ minLength: 1, maxLength: 1024, pattern: NO_CONTROLS, description: 'Destination mailbox path (UTF-8)', examples: ['Archive'] }) },
  { additionalProperties: false, examples: [{ destination: 'Archive' }] },
);

export const MessageLocation = Type.Object(
  {
    id: Type.String({ description: 'The id of the message in `mailbox`', examples: ['AV9B3wAAAAAC'] }),
    mailbox: Type.String({ examples: ['Archive'] }),
  },
  { $id: 'MessageLocation' },
);

export const AppendQuery = Type.Object({
  flags: Type.Optional(
    Type.Array(Flag, {
      maxItems: 64,
      description: 'Flags for the new message; repeat the parameter for several (`flags=%5CSeen&flags=%24Work`)',
    }),
  ),
});

export const ChangesQuery = Type.Object({
  since: Type.String({
    minLength: 1,
    maxLength: 512,
    description: 'A `state` from a listing or from an earlier /changes answer',
  }),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 500, description: 'Most `updated` summaries per answer' }),
});

export const Changes = Type.Object(
  {
    created: Type.Array(Type.String(), { description: 'Ids of messages that arrived since' }),
    updated: Type.Array(Type.Ref('MessageSummary'), { description: 'Summaries of older messages whose flags changed' }),
    destroyed: Type.Array(Type.String(), {
      description: 'Ids of messages that went away (may name ids the client never saw: drop those)',
    }),
    state: Type.String({ description: 'Pass as `since` next time' }),
    hasMore: Type.Boolean({ description: 'More changes wait: call again with `state` right away' }),
  },
  { $id: 'Changes' },
);

/** The `If-Match` header of the writes to one message (PATCH, move, DELETE; decision 0010). */
export const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(
    Type.String({
      description:
        'Write only if the mailbox is still in a state the client listed (RFC 9110 §13.1.1): `"<state>"` with the `state` (the strong `ETag`) of a listing of this mailbox, or a list `"a", "b"` (any one current suffices). ' +
        'IMAP with CONDSTORE: the state is current while UIDVALIDITY, UIDNEXT, EXISTS and HIGHESTMODSEQ are all unchanged, so any arrival, expunge or flag change anywhere in the mailbox since the listing fails it, and the flag or `\\Deleted` STORE carries `UNCHANGEDSINCE` (RFC 7162), so a change to this message after the check fails it too. ' +
        'IMAP without CONDSTORE: the mailbox part must be unchanged and the listed page must show the same UIDs and flags (a flag changed off that page goes unseen); check and write are then two commands. A move is checked right before its MOVE, which IMAP cannot make conditional. POP3 (DELETE only): the maildrop must hold the same messages. ' +
        'Otherwise 412 PRECONDITION_FAILED and nothing is written. `*` matches any existing message; a weak tag (`W/"…"`) never matches; a state of another mailbox, or from before a UIDVALIDITY change, is 412; a malformed header is 400. A missing message is 404 whatever the header says.',
      examples: ['"aTEuMTcwMDAwMDAwMC4xMy4xMi4yMQ"'],
    }),
  ),
});
