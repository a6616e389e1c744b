/**
 * Node socket, TLS and DNS failures → the gateway's stable codes, for every mail protocol. The IMAP
 * and POP3 mappers first look at what their own protocol said (a NO, an -ERR, a login refusal) and
 * hand everything that happened below the protocol to this one classifier, so that a refused port,
 * an unknown host or a bad certificate reads the same whichever protocol the account speaks.
 *
 * Details tell the caller what to change (the host, the port, `tlsVerify`), never what the gateway
 * sent.
 */
import { GatewayError, isGatewayError } from '../errors.js';

/**
 * OpenSSL and Node certificate codes (`CERT_HAS_EXPIRED`, `ERR_TLS_CERT_ALTNAME_INVALID`,
 * `ERR_SSL_WRONG_VERSION_NUMBER` when a plain-text port is dialled with TLS, ...).
 */
const TLS_CODE =
  /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|HOSTNAME_MISMATCH)/;
/** Some TLS failures arrive with no usable code, only OpenSSL's words. */
const TLS_MESSAGE = /certificate|SSL routines|handshake/i;
/** The OS gave up on the TCP connection (connect or retransmissions); ETIMEOUT is imapflow's spelling. */
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ETIMEOUT']);
/** getaddrinfo failures: no such name, or the resolver could not answer now. */
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN']);
/** The peer closed or reset an established connection. */
const LOST_CODES = new Set(['ECONNRESET', 'EPIPE']);

export interface SocketErrorContext {
  /** What the client was doing (`connect`, `greeting`, a command verb), added to the detail. */
  step?: string | undefined;
  /** The error's code when the library keeps it elsewhere than `err.code`. */
  code?: string | undefined;
  /** The library already knows the failure was TLS (imapflow's `tlsFailed`). */
  tls?: boolean | undefined;
}

/**
 * The gateway's error for a socket, TLS or DNS failure, or null when `err` is none of those (the
 * protocol mapper then decides). A GatewayError is passed through as it is.
 */
export function classifySocketError(err: unknown, context: SocketErrorContext = {}): GatewayError | null {
  if (isGatewayError(err)) return err;
  const code = context.code ?? (err as { code?: unknown } | null)?.code;
  const codeText = typeof code === 'string' ? code : '';
  const message = String((err as { message?: unknown } | null)?.message ?? '');
  const cause = { cause: err };
  const during = context.step === undefined ? '' : ` (${context.step})`;

  if (context.tls === true || TLS_CODE.test(codeText) || TLS_MESSAGE.test(message)) {
    return new GatewayError(
      'UPSTREAM_ERROR',
      `TLS with the mail server failed (${codeText || 'handshake error'}); for a self-signed certificate set tlsVerify to false`,
      cause,
    );
  }
  if (codeText === 'ECONNREFUSED') {
    return new GatewayError('UPSTREAM_ERROR', 'The mail server refused the connection', cause);
  }
  if (DNS_CODES.has(codeText)) {
    return new GatewayError('UPSTREAM_ERROR', 'The mail server host name could not be resolved', cause);
  }
  if (TIMEOUT_CODES.has(codeText)) {
    return new GatewayError('UPSTREAM_TIMEOUT', `The mail server did not answer in time${during}`, cause);
  }
  if (LOST_CODES.has(codeText)) {
    return new GatewayError('UPSTREAM_ERROR', `The connection to the mail server was lost${during}`, cause);
  }
  return null;
}
