/**
 * The HTTP server's bounds on slow clients, as Fastify and Node options. Fastify turns Node's
 * request timeout off by default, so a body that never finishes held its request (and socket) open
 * for as long as the client liked, bounded only by the file-descriptor limit; headers stalled for
 * Node's 60 s plus its 30 s checking interval.
 *
 * Node checks these bounds on a timer (`connectionsCheckingInterval`), not per byte: the interval
 * is a fraction of the smaller bound so that a stalled request is answered close to its bound.
 * The request timeout covers receiving the request only; a long download streams for as long as
 * it takes once the request is in.
 */
import type { ServerOptions } from 'node:http';
import type { Config } from '../config.js';

export interface HttpServerOptions {
  requestTimeout: number;
  keepAliveTimeout: number;
  http: ServerOptions;
}

export function httpServerOptions(bounds: Config['http']): HttpServerOptions {
  const checkEveryMs = Math.min(5_000, Math.max(50, Math.floor(Math.min(bounds.headersTimeoutMs, bounds.requestTimeoutMs) / 4)));
  return {
    requestTimeout: bounds.requestTimeoutMs,
    keepAliveTimeout: bounds.keepAliveTimeoutMs,
    http: { headersTimeout: bounds.headersTimeoutMs, connectionsCheckingInterval: checkEveryMs },
  };
}
