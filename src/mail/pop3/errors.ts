/**
 * POP3 answers and connection failures → the gateway's stable error codes.
 *
 * | what happened                                   | code                  |
 * |-------------------------------------------------|-----------------------|
 * | `-ERR [IN-USE]` (RFC 2449 §8.1.2): the maildrop is locked by another session (another client, or
 * |   another gateway replica)                       | POOL_EXHAUSTED (503, Retry-After) |
 * | `-ERR [LOGIN-DELAY]` (RFC 2449 §8.1.1): logged in too soon after the last time | POOL_EXHAUSTED (503, Retry-After) |
 * | `-ERR [AUTH]` (RFC 3206 §4) or a plain `-ERR` to PASS / AUTH | UPSTREAM_AUTH_FAILED (422) |
 * | `-ERR [SYS/TEMP]`, `[SYS/PERM]` (RFC 3206 §3) or any other `-ERR` | UPSTREAM_ERROR (502) |
 * | no answer within the bound                      | UPSTREAM_TIMEOUT (504) |
 * | connection closed or reset, TLS failure, garbage on the wire | UPSTREAM_ERROR (502) |
 *
 * IN-USE is a 503 and not a 502 on purpose: the server is fine, the maildrop is merely busy, and
 * a client should retry after a short wait, exactly what POOL_EXHAUSTED with Retry-After tells it.
 *
 * Details never carry what the gateway sent (PASS and AUTH lines hold secrets), only the command's
 * verb and the server's text, made printable; and for PASS and AUTH not even that (a server may echo).
 */
import { GatewayError, type ErrorCode } from '../../errors.js';
import { classifySocketError } from '../upstream-errors.js';
import { printable, type Pop3Reply } from './responses.js';

/** Seconds a caller is told to wait after `[IN-USE]`: a POP3 session of another client is usually short. */
const IN_USE_RETRY_AFTER_SECONDS = 5;

/** An `-ERR` answer, kept with what the server said so callers can tell answers apart. */
export class Pop3ReplyError extends GatewayError {
  readonly command: string;
  readonly responseCode: string | null;
  readonly serverText: string;

  constructor(code: ErrorCode, detail: string, command: string, reply: Pop3Reply, retryAfterSeconds?: number) {
    super(code, detail, retryAfterSeconds === undefined ? {} : { retryAfterSeconds });
    this.name = 'Pop3ReplyError';
    this.command = command;
    this.responseCode = reply.code;
    this.serverText = printable(reply.text);
  }
}

/**
 * The error for an `-ERR` answer to `command` (its verb only). `login` tells that the command was
 * PASS or AUTH, where a plain -ERR means the credentials were refused.
 */
export function errorForReply(command: string, reply: Pop3Reply, options: { login?: boolean } = {}): Pop3ReplyError {
  // A server may quote the PASS or AUTH line it refused: nothing it says to a login is kept.
  const heard = options.login ? { ...reply, text: '' } : reply;
  const said = heard.text ? `: ${printable(heard.text)}` : '';
  switch (reply.code) {
    case 'IN-USE':
      return new Pop3ReplyError(
        'POOL_EXHAUSTED',
        `The mail server says this maildrop is in use by another POP3 session; retry shortly${said}`,
        command,
        heard,
        IN_USE_RETRY_AFTER_SECONDS,
      );
    case 'LOGIN-DELAY':
      return new Pop3ReplyError(
        'POOL_EXHAUSTED',
        `The mail server does not allow another login to this maildrop yet${said}`,
        command,
        heard,
        IN_USE_RETRY_AFTER_SECONDS,
      );
    case 'AUTH':
      return new Pop3ReplyError('UPSTREAM_AUTH_FAILED', 'The mail server refused the stored credentials', command, heard);
    case 'SYS/TEMP':
    case 'SYS/PERM':
      return new Pop3ReplyError('UPSTREAM_ERROR', `The mail server failed ${command}${said}`, command, heard);
    default:
      if (options.login) {
        return new Pop3ReplyError('UPSTREAM_AUTH_FAILED', 'The mail server refused the stored credentials', command, heard);
      }
      return new Pop3ReplyError('UPSTREAM_ERROR', `The mail server answered -ERR to ${command}${said}`, command, heard);
  }
}

export function timeoutError(step: string): GatewayError {
  return new GatewayError('UPSTREAM_TIMEOUT', `The mail server did not answer in time (${step})`);
}

export function connectionLostError(step: string, cause?: unknown): GatewayError {
  return new GatewayError(
    'UPSTREAM_ERROR',
    `The connection to the mail server was lost (${step})`,
    cause === undefined ? {} : { cause },
  );
}

export function protocolError(what: string): GatewayError {
  return new GatewayError('UPSTREAM_ERROR', `The mail server broke the POP3 protocol: ${what}`);
}

/** The session was given up on purpose (dropped without QUIT). */
export function droppedError(): GatewayError {
  return new GatewayError('UPSTREAM_ERROR', 'The POP3 session was dropped');
}

/** A socket 'error' (from connect, TLS or the wire) → our code; anything unrecognised is a lost connection. */
export function socketError(err: unknown, step: string): GatewayError {
  return classifySocketError(err, { step }) ?? connectionLostError(step, err);
}
