/**
 * Turns what imapflow throws into our stable error codes. The detail says what happened in words a
 * caller can act on, never the server's raw answer verbatim beyond its human text, never credentials.
 *
 * Only what the server did is 502 UPSTREAM_ERROR: a tagged NO or BAD, a socket, TLS or DNS failure,
 * a connection that went away, a response imapflow could not parse. Anything else thrown below the
 * backend (a TypeError of ours, an imapflow code for misuse) is a bug of the gateway: 500
 * INTERNAL_ERROR, masked and logged with its cause, never disguised as the mail server's fault.
 */
import { GatewayError, isGatewayError } from '../../errors.js';
import { classifySocketError } from '../upstream-errors.js';

interface ImapFlowErrorLike {
  code?: string;
  message?: string;
  authenticationFailed?: boolean;
  tlsFailed?: boolean;
  responseStatus?: string;
  responseText?: string;
  serverResponseCode?: string;
  mailboxMissing?: boolean;
  _err?: { code?: string; message?: string };
}

/** imapflow's own timers (connect, greeting, STARTTLS upgrade); the OS's ETIMEDOUT is classified below. */
const IMAPFLOW_TIMEOUT_CODES = new Set(['CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT']);
/** imapflow's words for a connection that is gone (the socket ones are classified below). */
const IMAPFLOW_LOST_CODES = new Set(['NoConnection', 'EConnectionClosed', 'StateLogout', 'ClosedAfterConnectText', 'ClosedAfterConnectTLS']);
/** imapflow's codes for a server that broke the protocol or its limits (parser errors are `ParserError<n>`). */
const IMAPFLOW_PROTOCOL_CODES = new Set([
  'UnexpectedTag',
  'MissingTag',
  'InvalidResponse',
  'ResponseProcessingFailed',
  'MAX_IMAP_NESTING_REACHED',
  'LineTooLarge',
  'LiteralTooLarge',
  'ResponseTooLarge',
  'TooManyTokens',
  'TooManyResponses',
  'STARTTLS_INJECTION',
  'COMPRESS_TRAILING_DATA',
  'DownloadIncomplete',
  'DownloadOverflow',
]);
/**
 * A value imapflow refuses to put on the wire (CR, LF or NUL in a string, RFC 9051 §4.3): it came with
 * the request, so it is the caller's to fix. The route schemas refuse such values first; this is the
 * net under them.
 */
const IMAPFLOW_INPUT_CODES = new Set(['InvalidStringValue', 'InvalidTokenValue', 'InvalidTextValue', 'InvalidSearchQuery']);

export function mapImapError(err: unknown, context: { mailbox?: string } = {}): GatewayError {
  if (isGatewayError(err)) return err;
  const e = (err ?? {}) as ImapFlowErrorLike;
  const code = e.code ?? e._err?.code ?? '';
  const cause = { cause: err };

  if (e.authenticationFailed) return mapLoginRefusal(e, cause);
  if (e.message === 'Unsupported authentication mechanism') {
    // imapflow found no SASL mechanism for these credentials in the server's CAPABILITY.
    return new GatewayError(
      'UPSTREAM_AUTH_FAILED',
      'The mail server offers no login mechanism for these credentials (an access token needs AUTH=XOAUTH2 or AUTH=OAUTHBEARER)',
      cause,
    );
  }
  if (IMAPFLOW_TIMEOUT_CODES.has(code)) {
    return new GatewayError('UPSTREAM_TIMEOUT', 'The mail server did not answer in time', cause);
  }
  // imapflow keeps the socket's error in `_err` when it wraps one.
  const socket = classifySocketError(err, { code, tls: e.tlsFailed });
  if (socket !== null) return socket;
  if (e.mailboxMissing || e.serverResponseCode === 'NONEXISTENT') {
    return new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${context.mailbox ?? ''}`.trim(), cause);
  }
  if (e.responseStatus === 'NO' || e.responseStatus === 'BAD') {
    const text = e.responseText ? `: ${e.responseText}` : '';
    return new GatewayError('UPSTREAM_ERROR', `The mail server answered ${e.responseStatus}${text}`, cause);
  }
  if (IMAPFLOW_LOST_CODES.has(code)) {
    return new GatewayError('UPSTREAM_ERROR', 'The connection to the mail server was lost', cause);
  }
  if (IMAPFLOW_PROTOCOL_CODES.has(code) || code.startsWith('ParserError')) {
    return new GatewayError('UPSTREAM_ERROR', `The mail server answered in a way the gateway could not use (${code})`, cause);
  }
  if (code === 'ETHROTTLE') {
    return new GatewayError('UPSTREAM_ERROR', 'The mail server is throttling this account; retry later', cause);
  }
  if (code === 'LockTimeout') return new GatewayError('UPSTREAM_TIMEOUT', 'The mail server did not answer in time', cause);
  if (IMAPFLOW_INPUT_CODES.has(code)) {
    return new GatewayError(
      'VALIDATION_FAILED',
      'A value in the request cannot be sent to the mail server (control characters such as CR, LF or NUL): remove them',
      cause,
    );
  }
  return new GatewayError('INTERNAL_ERROR', 'An internal error occurred; the request id identifies it in the logs', cause);
}

/**
 * A NO to LOGIN / AUTHENTICATE. imapflow flags every such NO as `authenticationFailed`, but the response
 * code (RFC 5530) tells whether the credentials were refused or the server would not take one more
 * session right now (too many connections, a backend down): the latter must not tell the caller that a
 * correct password is wrong. The detail is our own words only: a server may quote the login line it
 * refused, credentials and all.
 */
function mapLoginRefusal(e: ImapFlowErrorLike, cause: { cause: unknown }): GatewayError {
  switch ((e.serverResponseCode ?? '').toUpperCase()) {
    case 'LIMIT':
    case 'INUSE':
      return new GatewayError(
        'UPSTREAM_ERROR',
        'The mail server refused another session for this user (a connection limit)',
        cause,
      );
    case 'UNAVAILABLE':
    case 'SERVERBUG':
      return new GatewayError('UPSTREAM_ERROR', 'The mail server could not log in right now', cause);
    case 'PRIVACYREQUIRED':
      return new GatewayError(
        'UPSTREAM_AUTH_FAILED',
        'The mail server refuses to log in without TLS: use security "tls" or "starttls"',
        cause,
      );
    case 'EXPIRED':
      return new GatewayError('UPSTREAM_AUTH_FAILED', 'The mail server says the stored credentials have expired', cause);
    default:
      return new GatewayError('UPSTREAM_AUTH_FAILED', 'The mail server refused the stored credentials', cause);
  }
}
