/**
 * The event streams' shapes: the query and header of the two stream routes, and the JSON of each
 * event type as `data:` carries it (API.md, Events), for the OpenAPI document. The events
 * themselves are written as the log stores them (src/events/types.ts); these schemas describe them.
 */
import { Type, type TSchema } from 'typebox';
import { EVENTS_LOST, EVENT_TYPES, type EventType } from '../../events/types.js';
import { Nullable } from './common.js';

/** The most a resume point may be: a cursor names every covered account (the request head's limit is 16 KiB). */
export const MAX_RESUME_POINT_LENGTH = 16_000;

const types = Type.Optional(
  Type.String({
    minLength: 1,
    maxLength: 1000,
    description: `Only events of these types, comma-separated, from: ${EVENT_TYPES.join(', ')}. Every type when absent. \`events.lost\` is always sent.`,
    examples: ['message.new,message.deleted'],
  }),
);

const lastEventId = (description: string) =>
  Type.Optional(Type.String({ minLength: 1, maxLength: MAX_RESUME_POINT_LENGTH, description }));

export const AccountEventsQuery = Type.Object({
  types,
  lastEventId: lastEventId(
    'Resume after this event id (the SSE `id:` of the last event received), for clients that cannot set `Last-Event-ID`. The header wins when both are sent: a browser\'s EventSource sends the header on each reconnect with the newer id, while the URL keeps the first one.',
  ),
});

export const EventsQuery = Type.Object({
  accounts: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 66_000,
      description: 'The accounts to follow, comma-separated. Every account the caller may read when absent (those that exist when the stream opens).',
      examples: ['alice,bob'],
    }),
  ),
  types,
  lastEventId: lastEventId(
    'Resume from this cursor (the SSE `id:` of the last event received on `/v1/events`), for clients that cannot set `Last-Event-ID`. The header wins when both are sent (EventSource sends the header on reconnect).',
  ),
});

export const ResumeHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({ maxLength: MAX_RESUME_POINT_LENGTH, description: 'Where to resume: the SSE `id:` of the last event received (EventSource sends it on reconnect)' }),
  ),
});

const base = {
  id: Type.String({ description: "The event's own id: opaque, ordered per account", examples: ['1718000000000-0'] }),
  account: Type.String({ examples: ['alice'] }),
  at: Type.String({ format: 'date-time', description: 'When the change was seen' }),
};
const mailbox = Type.String({ description: 'The mailbox path the event concerns', examples: ['INBOX'] });
const accountWide = Nullable(Type.String({ description: 'Null: the event concerns the account, not one mailbox' }));

function eventOf(type: EventType, description: string, properties: Record<string, TSchema>, onMailbox = true): TSchema {
  return Type.Object(
    { ...base, type: Type.Literal(type), mailbox: onMailbox ? mailbox : accountWide, ...properties },
    { title: type, description },
  );
}

const OutboxRecipients = Type.Array(
  Type.Object({ address: Type.String(), status: Type.String({ examples: ['sent'] }), response: Nullable(Type.String()) }),
  { description: "Each recipient's outcome, as in the outbox entry" },
);

const Flags = Type.Object({ added: Type.Array(Type.String()), removed: Type.Array(Type.String()) }, { description: 'Flags and keywords added and removed' });

/**
 * The JSON of every event type, one schema each, told apart by `type` (a `const` in each: no
 * discriminator, which would need a named schema per type). OpenAPI 3.1 has no way to give the
 * frames of a `text/event-stream` a schema (3.2's `itemSchema` will), so the stream's content
 * names it in `x-sse-data`, and clients generated from the document get it as a component.
 */
export const Event = Type.Unsafe({
  $id: 'Event',
  description:
    'The `data:` of one SSE event. Fields common to all: `id`, `type`, `account`, `mailbox`, `at`; each type adds its own. Message events carry the ids the REST routes accept.',
  oneOf: [
    eventOf('message.new', 'A message arrived in, or was copied or moved into, a mailbox', { message: Type.Ref('MessageSummary') }),
    eventOf('message.updated', "A message's flags changed (by anyone)", { message: Type.Ref('MessageSummary'), flags: Flags }),
    eventOf('message.deleted', 'A message was expunged or moved away', { messageId: Type.String({ description: 'The gateway id it had' }) }),
    eventOf('mailbox.created', 'A mailbox was created', {}),
    eventOf('mailbox.deleted', 'A mailbox was deleted', {}),
    eventOf('mailbox.renamed', 'A mailbox was renamed (`mailbox` is the new path)', { from: Type.String({ description: 'The old path' }) }),
    eventOf(
      'message.sent',
      'An outbox entry was accepted by SMTP for at least one recipient (its final outcome: every recipient sent or refused)',
      {
        queueId: Type.String(),
        messageId: Type.String({ description: 'RFC 5322 Message-ID' }),
        response: Nullable(Type.String({ description: "The SMTP server's answer to the message" })),
        permanent: Type.Boolean({ description: 'True when some recipient was refused (5xx)' }),
        recipients: OutboxRecipients,
      },
      false,
    ),
    eventOf(
      'message.failed',
      'An outbox entry was refused by SMTP for every recipient, or gave up retrying',
      {
        queueId: Type.String(),
        messageId: Type.String({ description: 'RFC 5322 Message-ID' }),
        error: Type.String(),
        permanent: Type.Boolean({ description: 'True for a refusal (5xx), false when retries ran out' }),
        recipients: OutboxRecipients,
      },
      false,
    ),
    eventOf('account.error', 'The gateway cannot log in to or reach the mail server', { code: Type.String({ examples: ['UPSTREAM_AUTH_FAILED'] }), detail: Type.String() }, false),
    eventOf('account.recovered', 'The gateway can log in and reach the mail server again', { code: Type.String(), detail: Type.String() }, false),
    Type.Object(
      { type: Type.Literal(EVENTS_LOST), account: Type.String({ examples: ['alice'] }) },
      {
        title: EVENTS_LOST,
        description:
          "The resume point is older than the events kept: some of this account's events are gone. Re-read listings (or `changes`). Sent once, before the kept events; it has no SSE `id:`.",
      },
    ),
  ],
});
