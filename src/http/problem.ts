/**
 * The one mapper from errors to RFC 9457 problem details (`application/problem+json`).
 * 4xx log at warn, 5xx at error; a 5xx detail the gateway did not write itself is masked.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import { GatewayError, STATUS_TITLES, isGatewayError, type ErrorCode } from '../errors.js';
import { RouteMethods } from './method-not-allowed.js';
import { PATTERN_RULES } from './schemas/patterns.js';

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

export function problemDocument(error: GatewayError, requestId: string): ProblemDocument {
  return {
    type: problemType(error.code),
    title: titleOf(error.status),
    status: error.status,
    detail: error.message,
    code: error.code,
    requestId,
  };
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: GatewayError): FastifyReply {
  const body = problemDocument(error, String(request.id));
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

/**
 * Statuses that Fastify and its plugins answer with, mapped by meaning to the code that says the same.
 * Any other 4xx is CLIENT_ERROR with its own status: a plugin's 403 is not an egress refusal, nor is a
 * 409 an account that exists.
 */
const CODE_BY_STATUS: Partial<Record<number, ErrorCode>> = {
  400: 'VALIDATION_FAILED',
  401: 'UNAUTHORIZED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  416: 'RANGE_NOT_SATISFIABLE',
  503: 'SERVICE_UNAVAILABLE',
};

/** What the route takes as a body and what came, for the details of a 413 or 415. */
export interface BodyExpectation {
  consumes: readonly string[];
  maxBytes?: number;
  /** The request's Content-Type. */
  sent?: string;
}

/** Fastify's own errors (validation, body parsing, limits) and plugins' errors → our stable codes. */
export function toGatewayError(err: unknown, body: BodyExpectation = { consumes: ['application/json'] }): GatewayError {
  if (isGatewayError(err)) return err;
  const e = err as FastifyError & { validation?: ValidationIssue[]; validationContext?: string };
  if (Array.isArray(e?.validation)) {
    return new GatewayError('VALIDATION_FAILED', describeValidation(e.validationContext, e.validation) ?? (e.message || 'The request is not valid'));
  }
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError(
        'PAYLOAD_TOO_LARGE',
        `The request body is larger than this endpoint accepts${body.maxBytes === undefined ? '' : ` (${body.maxBytes} bytes)`}`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError(
        'UNSUPPORTED_MEDIA_TYPE',
        `This endpoint takes a body of type ${body.consumes.join(' or ')}${body.sent ? `, not ${body.sent.slice(0, 100)}` : ''}`,
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('VALIDATION_FAILED', 'The body is empty although Content-Type says application/json: send a JSON object, or no Content-Type');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('VALIDATION_FAILED', e.message);
    default:
      break;
  }
  if (e instanceof SyntaxError || e?.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new GatewayError('VALIDATION_FAILED', `body is not valid JSON: ${e.message}`);
  }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  const known = CODE_BY_STATUS[status];
  if (known !== undefined) return new GatewayError(known, e.message || titleOf(status));
  if (status >= 400 && status < 500) return new GatewayError('CLIENT_ERROR', e.message || titleOf(status), { status });
  return new GatewayError('INTERNAL_ERROR', 'An internal error occurred; the request id identifies it in the logs', {
    cause: err,
  });
}

/** The longest path parameter the router takes (a mailbox path: 1024 characters, as its schema says). */
export const MAX_PARAM_LENGTH = 1024;

/**
 * Errors Fastify meets before routing (its `frameworkErrors` option): a path whose percent-encoding
 * is not UTF-8, a parameter over `maxParamLength`. Answered like any other error.
 */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const error = mapFrameworkError(err);
  request.log.warn({ code: error.code, status: error.status }, error.message);
  // Hooks do not run for these requests, so the id header the onSend hook adds is set here.
  void sendProblem(request, reply.header('x-request-id', String(request.id)), error);
}

function mapFrameworkError(err: FastifyError): GatewayError {
  switch (err.code) {
    case 'FST_ERR_BAD_URL':
      return new GatewayError(
        'VALIDATION_FAILED',
        'The path holds a percent-encoded sequence that is not UTF-8 (such as %FF): encode each segment as UTF-8 (encodeURIComponent)',
      );
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new GatewayError('CLIENT_ERROR', `A path parameter is longer than ${MAX_PARAM_LENGTH} characters, the most a mailbox path may have: shorten it`, { status: 414 });
    default:
      return toGatewayError(err);
  }
}

/** One ajv error, as Fastify hands it over. */
interface ValidationIssue {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/**
 * A detail that names the field and the rule, such as `body has an unknown field "passwrd"` or
 * `querystring/limit must be <= 200` (ajv's message alone does not name an unknown field).
 */
export function describeValidation(context: string | undefined, issues: ValidationIssue[]): string | undefined {
  const issue = issues[0];
  if (issue === undefined) return undefined;
  const where = `${context ?? 'request'}${issue.instancePath ?? ''}`;
  const params = issue.params ?? {};
  switch (issue.keyword) {
    case 'additionalProperties':
      return `${where} has an unknown field "${String(params.additionalProperty)}"; remove it (the OpenAPI document lists the fields)`;
    case 'required':
      return `${where} must have the field "${String(params.missingProperty)}"`;
    case 'pattern': {
      const rule = PATTERN_RULES[String(params.pattern)];
      return `${where} ${rule ?? issue.message ?? 'is not valid'}`;
    }
    case 'enum':
      return `${where} must be one of ${(params.allowedValues as unknown[] | undefined)?.map((v) => JSON.stringify(v)).join(', ') ?? 'the allowed values'}`;
    default:
      return `${where} ${issue.message ?? 'is not valid'}`;
  }
}

export function titleOf(status: number): string {
  return STATUS_TITLES[status] ?? STATUS_CODES[status] ?? 'Error';
}

export function registerProblemHandlers(app: FastifyInstance): void {
  const routeMethods = new RouteMethods();
  routeMethods.watch(app);
  app.setErrorHandler((err, request, reply) => {
    const consumes = (request.routeOptions.schema as { consumes?: string[] } | undefined)?.consumes ?? ['application/json'];
    const error = toGatewayError(err, { consumes, maxBytes: request.routeOptions.bodyLimit, sent: request.headers['content-type'] });
    const logFields = { code: error.code, status: error.status };
    if (error.status >= 500) {
      request.log.error({ ...logFields, err: describeCause(error) }, error.message);
    } else {
      request.log.warn(logFields, error.message);
    }
    return sendProblem(request, reply, error);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = routeMethods.allowed(path);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      return sendProblem(
        request,
        reply,
        new GatewayError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}; use ${allowed.join(', ')}`, {
          headers: { allow: allowed.join(', ') },
        }),
      );
    }
    return sendProblem(request, reply, new GatewayError('NOT_FOUND', `No route ${request.method} ${path}`));
  });
}

/** The cause for the log: type, message and code only (never a request, a socket, a credential). */
function describeCause(error: GatewayError): Record<string, unknown> {
  const cause = error.cause as { name?: string; message?: string; code?: string; stack?: string } | undefined;
  if (cause === undefined) return { message: error.message };
  return { type: cause.name, message: cause.message, code: cause.code, stack: cause.stack };
}
