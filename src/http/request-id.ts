/**
 * The request id: the caller's `X-Request-Id` when it is a sane token, so a request can be followed
 * from the caller's logs into the gateway's; otherwise a fresh UUID. It is echoed on every response
 * and is the problem document's `requestId`.
 */
import { randomUUID } from 'node:crypto';

/** Letters, digits and `._:-`, up to 128: what tracing systems send, and nothing that could forge a log line. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}
