/**
 * Answers what Node's HTTP parser refuses before any request exists (Fastify's `clientErrorHandler`):
 * headers too large (431), a request or its headers not received in time (408), bytes that are not
 * HTTP (400). Fastify's default writes its own JSON; this writes the same problem document as every
 * other error, with a request id for the log line, and closes the connection (the parser cannot
 * find the next request on it).
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { GatewayError } from '../errors.js';
import { problemDocument } from './problem.js';

/** What each parser refusal means to the caller, by Node's error code. */
function refusalFor(code: string | undefined): GatewayError {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return new GatewayError('CLIENT_ERROR', 'The request line and headers are larger than the server accepts (16 KiB): send fewer or shorter headers', {
        status: 431,
      });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new GatewayError('CLIENT_ERROR', 'The request was not received in time (HTTP_REQUEST_TIMEOUT_MS, HTTP_HEADERS_TIMEOUT_MS): send it whole, without pauses', {
        status: 408,
      });
    default:
      return new GatewayError('CLIENT_ERROR', `The request is not valid HTTP/1.1 (${code ?? 'parse error'}): check the request line, headers and framing`, {
        status: 400,
      });
  }
}

export function clientErrorHandler(log: FastifyBaseLogger): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    // A reset connection has nobody left to answer (https://nodejs.org/api/http.html#event-clienterror).
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const error = refusalFor(err.code);
    const requestId = randomUUID();
    log.warn({ reqId: requestId, code: error.code, status: error.status, parserCode: err.code }, error.message);
    if (socket.writable) {
      const problem = problemDocument(error, requestId);
      const body = JSON.stringify(problem);
      socket.write(
        `HTTP/1.1 ${error.status} ${problem.title}\r\n` +
          'Content-Type: application/problem+json; charset=utf-8\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\n` +
          `X-Request-Id: ${requestId}\r\n` +
          'Connection: close\r\n\r\n' +
          body,
      );
    }
    socket.destroy();
  };
}
