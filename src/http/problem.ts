/**
 * The one mapper from errors to RFC 9457 problem details (`application/problem+json`).
 * 4xx log at warn, 5xx at error; a 5xx detail the gateway did not write itself is masked.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_STATUS, GatewayError, STATUS_TITLES, isGatewayError, type ErrorCode } from '../errors.js';

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId: string;
}

export function problemType(code: string): string {
  return `urn:mailgw:problem:${code.toLowerCase().replace(/_/g, '-')}`;
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: GatewayError): FastifyReply {
  const body: ProblemDocument = {
    type: problemType(error.code),
    title: STATUS_TITLES[error.status] ?? 'Error',
    status: error.status,
    detail: error.message,
    code: error.code,
    requestId: String(request.id),
  };
  // A streamed response that failed after its headers went out cannot become a problem document.
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy();
    return reply;
  }
  if (error.retryAfterSeconds !== undefined) void reply.header('retry-after', String(error.retryAfterSeconds));
  for (const [name, value] of Object.entries(error.headers)) void reply.header(name, value);
  return reply
    .code(error.status)
    .header('content-type', 'application/problem+json; charset=utf-8')
    .removeHeader('content-disposition')
    .removeHeader('etag')
    .removeHeader('accept-ranges')
    .removeHeader('content-length')
    .serializer(JSON.stringify)
    .send(body);
}

/** Fastify's own errors (validation, body parsing, limits) → our stable codes. */
export function toGatewayError(err: unknown): GatewayError {
  if (isGatewayError(err)) return err;
  const e = err as FastifyError & { validation?: unknown; validationContext?: string };
  if (e?.validation) {
    return new GatewayError('VALIDATION_FAILED', e.message || 'The request is not valid');
  }
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('PAYLOAD_TOO_LARGE', 'The request body is larger than this endpoint accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('UNSUPPORTED_MEDIA_TYPE', e.message);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('VALIDATION_FAILED', e.message);
    default:
      break;
  }
  if (e instanceof SyntaxError || e?.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new GatewayError('VALIDATION_FAILED', `body is not valid JSON: ${e.message}`);
  }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code = (Object.keys(ERROR_STATUS) as ErrorCode[]).find((c) => ERROR_STATUS[c] === status) ?? 'VALIDATION_FAILED';
    return new GatewayError(code, e.message || STATUS_TITLES[status] || 'Bad request');
  }
  return new GatewayError('INTERNAL_ERROR', 'An internal error occurred; the request id identifies it in the logs', {
    cause: err,
  });
}

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const error = toGatewayError(err);
    const logFields = { code: error.code, status: error.status };
    if (error.status >= 500) {
      request.log.error({ ...logFields, err: describeCause(error) }, error.message);
    } else {
      request.log.warn(logFields, error.message);
    }
    return sendProblem(request, reply, error);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, new GatewayError('NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`)),
  );
}

/** The cause for the log: type, message and code only (never a request, a socket, a credential). */
function describeCause(error: GatewayError): Record<string, unknown> {
  const cause = error.cause as { name?: string; message?: string; code?: string; stack?: string } | undefined;
  if (cause === undefined) return { message: error.message };
  return { type: cause.name, message: cause.message, code: cause.code, stack: cause.stack };
}
