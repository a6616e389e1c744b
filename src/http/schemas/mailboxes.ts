import { Type } from 'typebox';
import { Nullable } from './common.js';
import { NO_CONTROLS } from './patterns.js';

export const MailboxListQuery = Type.Object({
  counts: Type.Boolean({
    default: false,
    description: 'Add `counts` (messages, unseen, uidNext, uidValidity) to each mailbox (IMAP STATUS)',
  }),
});

export const Mailbox = Type.Object(
  {
    path: Type.String({ description: 'Full path, UTF-8', examples: ['Work/2024'] }),
    name: Type.String({ description: 'Last path segment', examples: ['2024'] }),
    delimiter: Nullable(Type.String({ examples: ['/'] })),
    parent: Nullable(Type.String({ description: 'Path of the parent, null at the top', examples: ['Work'] })),
    specialUse: Nullable(
      Type.String({
        description: 'RFC 6154 role (`\\Sent`, `\\Drafts`, `\\Trash`, `\\Junk`, `\\Archive`, `\\All`, `\\Flagged`), `\\Inbox` for INBOX',
        examples: ['\\Sent'],
      }),
    ),
    specialUseSource: Type.Unsafe<'attribute' | 'name' | null>({
      type: ['string', 'null'],
      enum: ['attribute', 'name', null],
      description:
        'Where `specialUse` comes from: `attribute`, the server marks the mailbox so (RFC 6154 SPECIAL-USE); `name`, guessed from its name because the server gave it no such attribute (always so on a server without SPECIAL-USE, such as Courier), and always for `\\Inbox`, which is INBOX by name. Null without a special use',
      examples: ['attribute'],
    }),
    subscribed: Type.Boolean(),
    flags: Type.Array(Type.String(), {
      description: 'Mailbox attributes; a parent that exists only as a hierarchy level has `\\Noselect`',
      examples: [['\\HasChildren']],
    }),
    counts: Type.Optional(
      Type.Object({
        messages: Type.Integer(),
        unseen: Type.Integer(),
        uidNext: Nullable(Type.Integer()),
        uidValidity: Nullable(Type.String({ description: 'Decimal string (up to 2^32-1)' })),
      }),
    ),
  },
  { $id: 'Mailbox' },
);

export const MailboxList = Type.Object({ mailboxes: Type.Array(Type.Ref('Mailbox')) });

const Path = Type.String({ minLength: 1, maxLength: 1024, pattern: NO_CONTROLS, description: 'Full mailbox path, UTF-8, with the server\'s delimiter', examples: ['Work/2024'] });

export const MailboxCreateBody = Type.Object(
  { path: Path },
  { additionalProperties: false, examples: [{ path: 'Work/2024' }] },
);

export const MailboxPatchBody = Type.Object(
  {
    path: Type.Optional(Path),
    subscribed: Type.Optional(Type.Boolean()),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: '`path` renames the mailbox; `subscribed` subscribes or unsubscribes it',
    examples: [{ path: 'Archive/2024' }, { subscribed: false }],
  },
);
