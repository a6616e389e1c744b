/**
 * The OpenAPI document (generated from the route schemas) and Swagger UI at /docs.
 *
 * The page holds the API key a visitor types in, so it runs under a policy of its own (the
 * plugin's hooks are scoped to its routes; the API answers JSON and needs none): only the gateway's
 * own scripts and styles (Swagger UI's bundle has no inline script, and sets styles through the
 * DOM, which CSP allows), no plugins, no framing by another site (clickjacking: CSP
 * frame-ancestors, and X-Frame-Options for older browsers, RFC 7034). No upgrade-insecure-requests:
 * a gateway on plain HTTP on loopback must keep working. Swagger UI's online validator is off, as
 * it would send the document to validator.swagger.io.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

export const OPENAPI_INFO = {
  title: 'mailgw',
  version: '1.0.0',
  description:
    'HTTP REST gateway to IMAP and POP3 mailboxes. Errors are RFC 9457 problem details with a stable `code`. ' +
    'Path parameters are single URL-encoded segments: the mailbox `Work/2024` is sent as `Work%2F2024`.',
  license: { name: 'MIT', identifier: 'MIT' },
};

export const DOCS_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self'",
].join('; ');

export interface SwaggerOptions {
  /** Swagger UI keeps an entered key in localStorage across reloads (DOCS_PERSIST_AUTHORIZATION). */
  persistAuthorization: boolean;
}

export async function registerSwagger(app: FastifyInstance, options: SwaggerOptions): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: OPENAPI_INFO,
      // Relative to where the document is served, so Swagger UI and generated clients call this gateway.
      servers: [{ url: '/', description: 'This gateway' }],
      tags: [
        { name: 'accounts', description: 'Mailbox accounts on IMAP or POP3 servers' },
        { name: 'mailboxes', description: 'Folders of an account' },
        { name: 'messages', description: 'Listing, reading and downloading messages' },
        { name: 'sending', description: 'Sending over SMTP through the outbox, and what became of each message' },
        { name: 'events', description: 'What changes in the mailboxes, pushed as server-sent events' },
        { name: 'tokens', description: 'Access tokens for tenants: accounts × scopes (admin keys only)' },
        { name: 'webhooks', description: 'Events POSTed to URLs, signed (admin keys only)' },
        { name: 'service', description: 'Health and readiness' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'An admin key from API_KEYS, or an access token (`mgw_…`) from POST /v1/tokens. Each operation names the scope it needs.',
          },
        },
      },
      security: [{ bearerAuth: [] }],
    },
    transformObject: (documentObject) =>
      withOptionalDefaults((documentObject as { openapiObject: OpenApiDocument }).openapiObject),
    // Shared schemas keep their $id as their component name.
    refResolver: {
      buildLocalReference(json, _baseUri, _fragment, i) {
        return typeof json.$id === 'string' ? json.$id : `def-${i}`;
      },
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true, persistAuthorization: options.persistAuthorization, validatorUrl: null },
    staticCSP: DOCS_CSP,
    uiHooks: {
      onRequest: (_request, reply, done) => {
        void reply.header('x-frame-options', 'DENY').header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
        done();
      },
    },
  });
}

interface OpenApiDocument {
  paths?: Record<string, Record<string, unknown> | undefined>;
}
interface OpenApiParameter {
  in?: string;
  required?: boolean;
  schema?: { default?: unknown };
}

/**
 * A query parameter the server fills in with its default is not required of the caller. The route
 * schemas list such parameters as required (that is what gives handlers a definite type once ajv
 * has applied the default), so the document says what a caller must send instead.
 */
export function withOptionalDefaults<T extends OpenApiDocument>(document: T): T {
  for (const item of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(item ?? {})) {
      const parameters = (operation as { parameters?: OpenApiParameter[] } | undefined)?.parameters;
      if (!Array.isArray(parameters)) continue;
      for (const parameter of parameters) {
        if (parameter.in !== 'path' && parameter.schema?.default !== undefined) delete parameter.required;
      }
    }
  }
  return document;
}
