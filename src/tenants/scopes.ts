/**
 * The scope table (API.md, "Access tokens and limits"): what each route needs, declared in the route's
 * own definition (`config: { access }`), enforced by one hook (access.ts) and shown in the OpenAPI.
 *
 * | access   | who                                  | routes                                                    |
 * |----------|--------------------------------------|-----------------------------------------------------------|
 * | `public` | anyone                               | /health, /ready, /docs                                    |
 * | `read`   | admin keys, tokens with `read`       | every GET under an account; listing and reading accounts  |
 * | `write`  | admin keys, tokens with `write`      | flags, move, copy, delete, append, mailbox admin          |
 * | `send`   | admin keys, tokens with `send`       | sending, cancelling an outbox entry                       |
 * | `events` | admin keys, tokens with `events`     | the event streams                                         |
 * | `admin`  | admin keys (`API_KEYS`) only         | creating, changing, deleting accounts; tokens; webhooks; metrics |
 */
export const SCOPES = ['read', 'write', 'send', 'events'] as const;
export type Scope = (typeof SCOPES)[number];

/** What a route requires of its caller. */
export type RouteAccess = Scope | 'admin' | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call this route (tenants/scopes.ts); every route under /v1 must say. */
    access?: RouteAccess;
  }
}

/** The description line and security requirement the OpenAPI shows for a route's access. */
export function accessDocumentation(access: RouteAccess): { note: string; security: Array<Record<string, string[]>> } {
  switch (access) {
    case 'public':
      return { note: 'No key needed.', security: [] };
    case 'admin':
      return { note: 'Needs an admin key (`API_KEYS`); access tokens are refused with 403 FORBIDDEN.', security: [{ bearerAuth: ['admin'] }] };
    default:
      return {
        note: `Needs an admin key or an access token with the \`${access}\` scope for this account.`,
        security: [{ bearerAuth: [access] }],
      };
  }
}
