/**
 * CORS, off unless `CORS_ORIGINS` names the origins whose pages may call the API. The gateway is
 * meant for backends: a browser holding an API key would hand it to every script on its page.
 * Bearer keys, no cookies, so credentials mode stays off.
 */
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/**
 * Request headers a browser page may send (the ones the API reads). `Last-Event-ID` is not
 * CORS-safelisted, and an SSE client sends it when it resumes an event stream.
 */
const ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'If-Match', 'If-None-Match', 'Last-Event-ID', 'Range', 'X-Request-Id'];
/** Response headers a page may read (beyond the CORS-safelisted ones). */
const EXPOSED_HEADERS = [
  'ETag',
  'Location',
  'Retry-After',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'X-Request-Id',
  'Content-Range',
  'Content-Disposition',
  'Content-Length',
  'Allow',
];

export async function registerCors(app: FastifyInstance, origins: string[]): Promise<void> {
  if (origins.length === 0) return;
  await app.register(cors, {
    origin: origins.includes('*') ? '*' : origins,
    methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    credentials: false,
    maxAge: 600,
    // Preflights are answered before authentication: a browser never sends credentials on them.
    hook: 'onRequest',
  });
}
