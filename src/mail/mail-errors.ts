/**
 * The two refusals every layer of the mail code gives — "no such message" and "not on this
 * protocol" — built in one place, so that their code and wording agree wherever they arise.
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
