/**
 * 405 rather than 404 for a path that exists with other methods (RFC 9110 §15.5.6): the answer
 * carries `Allow`, so a caller who used the wrong method learns which ones the path takes.
 *
 * Fastify's router answers 404 for both cases, so every route's pattern is kept here as it is added
 * and matched against the path of a request that found no route.
 */
import type { FastifyInstance } from 'fastify';

interface RoutePattern {
  pattern: RegExp;
  methods: Set<string>;
}

export class RouteMethods {
  private readonly routes = new Map<string, RoutePattern>();

  /** Call before any route is registered: it watches every route that is added after it. */
  watch(app: FastifyInstance): void {
    app.addHook('onRoute', (route) => {
      const url = route.url;
      // A catch-all (CORS's `OPTIONS *`) matches every path, so it tells nothing about which exist.
      if (url === '*' || url === '/*') return;
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const entry = this.routes.get(url) ?? { pattern: toPattern(url), methods: new Set<string>() };
      for (const method of methods) entry.methods.add(method.toUpperCase());
      this.routes.set(url, entry);
    });
  }

  /** The methods some route takes at this path (sorted), or an empty list when no route has the path. */
  allowed(path: string): string[] {
    const methods = new Set<string>();
    for (const { pattern, methods: routeMethods } of this.routes.values()) {
      if (pattern.test(path)) for (const method of routeMethods) methods.add(method);
    }
    return [...methods].sort();
  }
}

/** `/v1/accounts/:account` → a regular expression over the raw path; `*` matches the rest. */
function toPattern(url: string): RegExp {
  const segments = url.split('/').map((segment) => {
    if (segment === '*') return '.*';
    if (segment.startsWith(':')) return '[^/]+';
    return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  // Routes are registered with ignoreTrailingSlash: `/v1/accounts/` is the same path.
  return new RegExp(`^${segments.join('/')}/?$`);
}
