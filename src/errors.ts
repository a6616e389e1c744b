/**
 * The one place that knows every error the gateway can answer.
 *
 * Code below the routes throws `GatewayError` with a stable `code`; the HTTP layer's error handler
 * (src/http/problem.ts) is the only mapper to RFC 9457 problem+json.
 */

/** One entry of the error catalogue: what the code means to a caller and what the caller should do. */
export interface ErrorSpec {
  status: number;
  /** When the gateway answers this code. */
  meaning: string;
  /** What the caller should do about it. */
  action: string;
  /** A `detail` as the gateway writes it, for the OpenAPI examples. */
  example: string;
}

/**
 * Every code the gateway answers, with its HTTP status (API.md, "Errors", plus decision 0005's
 * additions). The OpenAPI document's `code` enum, its per-status examples and docs/errors.md are all
 * generated from this table, so it is the one place to add a code.
 */
export const ERRORS = {
  VALIDATION_FAILED: {
    status: 400,
    meaning: 'A path parameter, query parameter, header or body does not match the schema.',
    action: '`detail` names the field and the rule it breaks: fix the request. Retrying it unchanged fails again.',
    example: 'querystring/limit must be <= 200',
  },
  UNAUTHORIZED: {
    status: 401,
    meaning: 'The `Authorization` header is missing, or carries no valid admin key or access token (unknown, deleted or expired).',
    action: 'Send `Authorization: Bearer <key>` with one of the keys in `API_KEYS`, or a current access token.',
    example: 'Missing or wrong API key (Authorization: Bearer <key>)',
  },
  FORBIDDEN: {
    status: 403,
    meaning: 'The access token is valid but lacks the scope this route needs, or the route takes an admin key.',
    action: 'Use a token with the scope `detail` names (an admin creates one with `POST /v1/tokens`), or an admin key.',
    example: 'This token lacks the write scope this route needs',
  },
  HOST_NOT_ALLOWED: {
    status: 403,
    meaning: 'The mail host resolves to an address the egress policy refuses (loopback, private, link-local, metadata).',
    action: 'Use a host on the public internet, or have the operator admit this one with `EGRESS_ALLOW` (a CIDR or the host name).',
    example:
      'the egress policy does not allow connections to "mail.internal"; an operator can admit it with EGRESS_ALLOW (the host name or a CIDR)',
  },
  NOT_FOUND: {
    status: 404,
    meaning: 'No route has this path.',
    action: 'Check the path against the OpenAPI document (`/docs`); a mailbox path is one URL-encoded segment (`Work%2F2024`).',
    example: 'No route GET /v1/acounts',
  },
  ACCOUNT_NOT_FOUND: {
    status: 404,
    meaning: 'No account has this id.',
    action: 'List accounts with `GET /v1/accounts`, or create this one with `POST /v1/accounts`.',
    example: 'No account alice',
  },
  TOKEN_NOT_FOUND: {
    status: 404,
    meaning: 'No access token has this id.',
    action: 'List tokens with `GET /v1/tokens`; a deleted token is gone for good.',
    example: 'No token tok_7Hq2mXc9LbVn0aPe',
  },
  WEBHOOK_NOT_FOUND: {
    status: 404,
    meaning: 'No webhook has this id.',
    action: 'List webhooks with `GET /v1/webhooks`; a deleted webhook is gone for good, with its delivery records.',
    example: 'No webhook wh_Jx2v9QmLr0tYb3cA',
  },
  MAILBOX_NOT_FOUND: {
    status: 404,
    meaning: 'The account has no mailbox at this path (or it cannot be selected).',
    action: 'List mailboxes with `GET …/mailboxes`; send the path as one URL-encoded segment.',
    example: 'No mailbox Archive',
  },
  MESSAGE_NOT_FOUND: {
    status: 404,
    meaning: 'No message has this id in this mailbox: it was deleted or moved, or the mailbox was recreated.',
    action: 'List the mailbox again and use the ids it gives.',
    example: 'No such message in this mailbox',
  },
  ATTACHMENT_NOT_FOUND: {
    status: 404,
    meaning: 'The message has no attachment with this id.',
    action: 'Read the message (`GET …/messages/{id}`) and use an id from its `attachments`.',
    example: 'No attachment 3 in this message',
  },
  OUTBOX_ENTRY_NOT_FOUND: {
    status: 404,
    meaning: 'The account has no outbox entry with this queue id (or, for a cancel, none that can still be cancelled: it is being sent or already sent, failed or cancelled).',
    action: 'List the outbox with `GET …/outbox`; final entries are kept for `OUTBOX_KEEP_HOURS`.',
    example: 'Outbox entry q_Jx2v9QmLr0tYb3cA was already sent; it can no longer be cancelled',
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    meaning: 'The path exists, but not with this method.',
    action: 'Use one of the methods the `Allow` header lists.',
    example: 'DELETE is not allowed on /v1/accounts; use GET, HEAD or POST',
  },
  ACCOUNT_EXISTS: {
    status: 409,
    meaning: 'An account with this id exists already.',
    action: 'Choose another id, leave `id` out to get a generated one, or change the existing account with `PATCH`.',
    example: 'An account with id alice already exists',
  },
  MAILBOX_EXISTS: {
    status: 409,
    meaning: 'A mailbox with this path exists already.',
    action: 'Choose another path; the existing mailbox can be used as it is.',
    example: 'A mailbox Archive already exists',
  },
  STATE_TOO_OLD: {
    status: 410,
    meaning: 'The cursor or state was issued before the mailbox changed identity (UIDVALIDITY), or cannot be answered from.',
    action: 'List the mailbox again from the first page and continue from its `state`.',
    example: 'The mailbox was rebuilt (UIDVALIDITY changed) since this cursor was issued; list again from the start',
  },
  PRECONDITION_FAILED: {
    status: 412,
    meaning:
      'The `If-Match` of a write (`PATCH`, `move` or `DELETE` of a message) names no current state: the mailbox changed since the listing that gave it (mail arrived or was removed, flags changed, or it was rebuilt), or the tag is weak or another mailbox\'s. Nothing was written.',
    action: 'List the mailbox again, decide again from what it shows, and retry with the new `state` (or without `If-Match` to write regardless).',
    example:
      'The mailbox changed since this state: 1 message arrived. Nothing was written; list the mailbox again, decide again, and retry with its new state',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    meaning: 'The request body is larger than the route accepts (`MAX_UPLOAD_BYTES` for messages, 1 MiB for JSON).',
    action: 'Send a smaller body, or ask the operator to raise `MAX_UPLOAD_BYTES`.',
    example: 'The request body is larger than this endpoint accepts (26214400 bytes)',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    meaning: 'The request body has a `Content-Type` this route does not take.',
    action: 'Send the media type `detail` names (`application/json`, or `message/rfc822` for a message).',
    example: 'This endpoint takes a body of type application/json, not text/plain',
  },
  RANGE_NOT_SATISFIABLE: {
    status: 416,
    meaning: 'The `Range` starts past the end of the message.',
    action: 'Ask for a range inside the size that `Content-Range: bytes */<size>` tells.',
    example: 'The message has 2048 bytes; the range asked for starts past its end',
  },
  NOT_SUPPORTED_BY_PROTOCOL: {
    status: 422,
    meaning: "The account's protocol or server cannot do this (e.g. flags, folders, search or move on POP3).",
    action: "Check the account's `capabilities` before calling; there is nothing to retry.",
    example: "Flags is not available on this account's protocol",
  },
  FLAG_NOT_ALLOWED: {
    status: 422,
    meaning: 'The mailbox does not accept this flag or keyword (its PERMANENTFLAGS lack it).',
    action: 'Use a system flag, or a mailbox that accepts keywords.',
    example: 'This mailbox does not store $Work (its PERMANENTFLAGS are \\Seen \\Deleted)',
  },
  UPSTREAM_AUTH_FAILED: {
    status: 422,
    meaning: 'The mail server refused the login with these credentials.',
    action: 'Correct the username or password (or token) with `PATCH /v1/accounts/{account}`; retrying unchanged fails again.',
    example: 'The mail server refused the stored credentials',
  },
  SMTP_NOT_CONFIGURED: {
    status: 422,
    meaning: 'The account has no `smtp` settings, so it cannot send.',
    action: 'Add them with `PATCH /v1/accounts/{account}` (`smtp: { host, port, security }`; username and secret default to the account\'s own).',
    example: 'Account alice has no smtp settings; add them with PATCH /v1/accounts/alice',
  },
  RATE_LIMITED: {
    status: 429,
    meaning: 'This key, token or client address sent more requests this minute than the limit allows.',
    action: 'Wait `Retry-After` seconds; `RateLimit-Remaining` and `RateLimit-Reset` on every response tell how close you are.',
    example: 'Rate limit of 600 requests per minute exceeded for this token; retry in 12 s',
  },
  INTERNAL_ERROR: {
    status: 500,
    meaning: 'A bug in the gateway.',
    action: 'Report it with the `requestId`; the server log has the cause under that id.',
    example: 'An internal error occurred; the request id identifies it in the logs',
  },
  UPSTREAM_ERROR: {
    status: 502,
    meaning: 'The mail server failed or answered with an error the gateway cannot map (connection refused, TLS failure, NO/BAD).',
    action: 'Retry later; if it persists, `detail` says what the server did (check host, port, security and certificate settings).',
    example: 'The mail server refused the connection',
  },
  POOL_EXHAUSTED: {
    status: 503,
    meaning: "All of the account's mail sessions stayed busy for the wait limit.",
    action: 'Retry after `Retry-After` seconds; send fewer concurrent requests for this account.',
    example: 'All 4 sessions of this account are busy; retry shortly',
  },
  SERVICE_UNAVAILABLE: {
    status: 503,
    meaning: 'The gateway cannot reach its own store (Redis or the data directory), or is shutting down.',
    action: 'Retry in a few seconds (after `Retry-After` when it is sent), on another replica if there is one.',
    example: 'the account store could not be written',
  },
  UPSTREAM_TIMEOUT: {
    status: 504,
    meaning: 'The mail server did not answer within `UPSTREAM_TIMEOUT_MS`.',
    action: 'Retry later; a server that is slow by nature may need a larger `UPSTREAM_TIMEOUT_MS`.',
    example: 'The mail server did not answer in time',
  },
  CLIENT_ERROR: {
    status: 400,
    meaning: 'A request refused by the HTTP layer for a reason no other code names; `status` carries the exact 4xx.',
    action: 'Read `status` and `detail`, and fix the request accordingly.',
    example: 'Request Header Fields Too Large',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Every code the gateway answers, in the catalogue's order. */
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

export interface GatewayErrorOptions {
  /** Seconds a client should wait before retrying (sent as `Retry-After`). */
  retryAfterSeconds?: number;
  /** Extra response headers the status calls for (e.g. `Content-Range` on a 416). */
  headers?: Record<string, string>;
  cause?: unknown;
  /** Only for CLIENT_ERROR: the exact 4xx status the HTTP layer refused the request with. */
  status?: number;
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, detail: string, options: GatewayErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = code === 'CLIENT_ERROR' && options.status !== undefined ? options.status : ERRORS[code].status;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.headers = options.headers ?? {};
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}

/** Human titles for the problem document's `title` member, one per status. */
export const STATUS_TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
