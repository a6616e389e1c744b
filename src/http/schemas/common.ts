/**
 * Shapes shared by several routes: path parameters, the problem document, enum helpers.
 * One schema per shape: it validates, serialises (unknown fields stripped), types the handler and
 * writes the OpenAPI document.
 */
import { Type, type Static, type TSchema } from 'typebox';

/** A string enum rendered as `enum` in OpenAPI (clearer than anyOf of consts). */
export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/**
 * A primitive that may be null, written `type: [T, 'null']` (JSON Schema 2020-12, OpenAPI 3.1)
 * rather than `anyOf`: fast-json-stringify serialises an `anyOf` by running a validator per value
 * (with ajv-formats' date-time regexes), three times slower per listing page for identical bytes.
 */
export function Nullable<T extends TSchema & { type: 'string' | 'integer' | 'number' | 'boolean' }>(schema: T) {
  return Type.Unsafe<Static<T> | null>({ ...schema, type: [schema.type, 'null'] });
}

/** `.` and `..` fit the character set but cannot be one URL path segment (they are dot-segments). */
export const ACCOUNT_ID_PATTERN = '^(?!\\.{1,2}$)[A-Za-z0-9._-]{1,64}$';

export const AccountId = Type.String({
  pattern: ACCOUNT_ID_PATTERN,
  description: 'Account id',
  examples: ['alice'],
});

export const MailboxPath = Type.String({
  minLength: 1,
  maxLength: 1024,
  description:
    'Mailbox path as one URL-encoded path segment, in UTF-8 (e.g. `Work%2F2024` for `Work/2024`; `INBOX` as is)',
  examples: ['INBOX'],
});

export const MessageId = Type.String({
  pattern: '^[A-Za-z0-9_-]{1,128}$',
  description: 'Opaque message id from a listing',
  examples: ['AV9B3wAAAAAB'],
});

export const AttachmentId = Type.String({
  pattern: '^[A-Za-z0-9._-]{1,64}$',
  description: 'Attachment id from the message',
  examples: ['2'],
});

export const AccountParams = Type.Object({ account: AccountId });
export const MailboxParams = Type.Object({ account: AccountId, mailbox: MailboxPath });
export const MessageParams = Type.Object({ account: AccountId, mailbox: MailboxPath, id: MessageId });
export const AttachmentParams = Type.Object({
  account: AccountId,
  mailbox: MailboxPath,
  id: MessageId,
  attachmentId: AttachmentId,
});

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'URI naming the problem type', examples: ['urn:mailgw:problem:message-not-found'] }),
    title: Type.String({ examples: ['Not Found'] }),
    status: Type.Integer({ examples: [404] }),
    detail: Type.String({ examples: ['No such message in this mailbox'] }),
    code: Type.String({ description: 'Stable machine-readable error code (API.md)', examples: ['MESSAGE_NOT_FOUND'] }),
    requestId: Type.String({ examples: ['req-1'] }),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (`application/problem+json`)' },
);

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'VALIDATION_FAILED: bad body, query or path',
  401: 'UNAUTHORIZED: missing or wrong API key',
  403: 'HOST_NOT_ALLOWED: the egress policy forbids the mail host',
  404: 'ACCOUNT_NOT_FOUND, MAILBOX_NOT_FOUND, MESSAGE_NOT_FOUND or ATTACHMENT_NOT_FOUND',
  409: 'ACCOUNT_EXISTS or MAILBOX_EXISTS',
  410: 'STATE_TOO_OLD: the cursor or state predates a UIDVALIDITY change',
  413: 'PAYLOAD_TOO_LARGE',
  416: 'RANGE_NOT_SATISFIABLE: the range starts past the end (Content-Range: bytes */size)',
  422: 'NOT_SUPPORTED_BY_PROTOCOL or UPSTREAM_AUTH_FAILED',
  502: 'UPSTREAM_ERROR: the mail server failed or answered with an error the gateway cannot map',
  503: 'POOL_EXHAUSTED: no session free in time (with Retry-After)',
  504: 'UPSTREAM_TIMEOUT: the mail server did not answer in time',
};

/** The problem responses a route can give, by status, for its schema's `response` map. */
export function problems(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const status of statuses) {
    out[status] = Type.Unsafe({
      description: PROBLEM_DESCRIPTIONS[status] ?? 'Problem details',
      content: { 'application/problem+json': { schema: Type.Ref('Problem') } },
    });
  }
  return out;
}

/** A streamed, non-JSON response body of the given media type. */
export function binaryResponse(mediaType: string, description: string): TSchema {
  return Type.Unsafe({
    description,
    content: { [mediaType]: { schema: { type: 'string', format: 'binary' } } },
  });
}

export const Address = Type.Object(
  { name: Type.String({ examples: ['Alice'] }), address: Type.String({ examples: ['alice@example.com'] }) },
  { $id: 'Address' },
);
