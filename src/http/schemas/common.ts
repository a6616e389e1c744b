/**
 * Shapes shared by several routes: path parameters, the problem document, enum helpers.
 * One schema per shape: it validates, serialises (unknown fields stripped), types the handler and
 * writes the OpenAPI document.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { ERRORS, ERROR_CODES, STATUS_TITLES, type ErrorCode } from '../../errors.js';
import { problemType, type ProblemDocument } from '../problem.js';
import { NO_CONTROLS } from './patterns.js';

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
  pattern: NO_CONTROLS,
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
    title: Type.String({ description: 'The HTTP status phrase', examples: ['Not Found'] }),
    status: Type.Integer({ description: 'The HTTP status code', examples: [404] }),
    detail: Type.String({ description: 'What went wrong and how to fix it', examples: ['No such message in this mailbox'] }),
    code: StringEnum(ERROR_CODES, {
      description: 'Stable machine-readable error code; docs/errors.md says what each means and what to do',
      examples: ['MESSAGE_NOT_FOUND'],
    }),
    requestId: Type.String({ description: 'Also sent as `X-Request-Id`; names the request in the logs', examples: ['req-1'] }),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (`application/problem+json`)' },
);

/**
 * Every route under /v1 can answer these, whatever it does: a missing or wrong key, a token without
 * the route's scope, a caller over its rate limit, and a bug. (Routes that take no key list their own.)
 */
const ALWAYS: readonly ErrorCode[] = ['UNAUTHORIZED', 'FORBIDDEN', 'RATE_LIMITED', 'INTERNAL_ERROR'];

/** What any call that reaches the mail server can meet on the way. */
export const UPSTREAM_CODES = ['HOST_NOT_ALLOWED', 'UPSTREAM_AUTH_FAILED', 'UPSTREAM_ERROR', 'POOL_EXHAUSTED', 'UPSTREAM_TIMEOUT'] as const;

/**
 * The problem responses a route can give, for its schema's `response` map: one response per status,
 * described by the codes it carries, with one example problem document per code (so a generated
 * client and Swagger UI show what each status really means on this route).
 */
export function problems(...codes: ErrorCode[]): Record<number, TSchema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set([...codes, ...ALWAYS])) {
    const { status } = ERRORS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<number, TSchema> = {};
  for (const [status, group] of [...byStatus].sort(([a], [b]) => a - b)) {
    out[status] = Type.Unsafe({
      description: group.map((code) => `\`${code}\`: ${ERRORS[code].meaning}`).join(' '),
      content: {
        'application/problem+json': {
          schema: Type.Ref('Problem'),
          examples: Object.fromEntries(group.map((code) => [code, { summary: ERRORS[code].meaning, value: exampleProblem(code) }])),
        },
      },
    });
  }
  return out;
}

function exampleProblem(code: ErrorCode): ProblemDocument {
  const { status, example } = ERRORS[code];
  return {
    type: problemType(code),
    title: STATUS_TITLES[status] ?? 'Error',
    status,
    detail: example,
    code,
    requestId: '0f3b2c1e-5d4a-4b8e-9c7f-2a1d6e8b9c0d',
  };
}

/** A JSON success response with its own description (the OpenAPI shows it instead of "Default Response"). */
export function success<T extends TSchema>(description: string, schema: T): T {
  return { ...schema, description };
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
