/**
 * The refusals every layer of the mail code gives — "no such message" and "not on this
 * protocol" — built in one place, so that their code and wording agree wherever they arise; and the 412 of a
 * write whose If-Match state is no longer current.
 */
import { GatewayError } from '../errors.js';

const NO_SUCH_MESSAGE = 'No such message in this mailbox';

/**
 * MESSAGE_NOT_FOUND (404). The default detail fits a message missing from the selected mailbox;
 * callers that know more say it (the id that cannot be ours, a message the server dropped since).
 */
export function messageNotFound(detail: string = NO_SUCH_MESSAGE, options: { cause?: unknown } = {}): GatewayError {
  return new GatewayError('MESSAGE_NOT_FOUND', detail, options);
}

/**
 * NOT_SUPPORTED_BY_PROTOCOL (422): the account's protocol, or its server, cannot do this. The
 * detail names what is missing (an extension, with its RFC) and, where there is one, what the
 * caller can do instead.
 */
export function notSupported(detail: string): GatewayError {
  return new GatewayError('NOT_SUPPORTED_BY_PROTOCOL', detail);
}

/** An account of a protocol this gateway was started without a backend for. */
export function protocolNotServed(protocol: string): GatewayError {
  return notSupported(`${protocol.toUpperCase()} accounts are not supported by this gateway yet`);
}

/**
 * PRECONDITION_FAILED (412): the write's If-Match names no current state (decision 0010). Every 412
 * says that nothing was written and how to go on.
 */
export function preconditionFailed(
  reason: string,
  instead = 'list the mailbox again, decide again, and retry with its new state',
): GatewayError {
  return new GatewayError('PRECONDITION_FAILED', `${reason}. Nothing was written; ${instead}`);
}

/** The 412 of an If-Match that carried only weak tags: they never match (RFC 9110 §13.1.1). */
export function onlyWeakTags(): GatewayError {
  return preconditionFailed(
    'If-Match carried only weak tags (W/"…"), which never match a write (strong comparison, RFC 9110 §13.1.1)',
    'send the listing\'s state as "<state>"',
  );
}
