/**
 * The one access hook. For every request, before anything else is done with it:
 *   1. who is calling (an admin key from API_KEYS, an access token, or nobody);
 *   2. the caller's rate limit (rate-limits.ts), so guessing keys costs a refused request each;
 *   3. whether the route lets this caller in: the route's `config.access` (scopes.ts) and, for a
 *      token, the account in the path (an account a token may not see is 404 ACCOUNT_NOT_FOUND, as
 *      if it did not exist, checked before the scope so a token learns nothing of other accounts).
 *
 * Every route under /v1 (and /metrics) must declare its access: a route without one fails at start.
 * With no API_KEYS configured (loopback only, config.ts) every caller is admin, except one that
 * presents an access token, which is held to it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { canSeeAccount, type Principal } from './principal.js';
import { keyDigest, type CallerLimit } from './rate-limits.js';
import { accessDocumentation, type RouteAccess } from './scopes.js';
import type { TokenService } from './token-service.js';
import { TOKEN_PREFIX } from './tokens.js';

/** Paths the plugins serve (Swagger UI) that carry no route config of ours. */
const PUBLIC_PREFIXES = ['/docs'];

export interface AccessOptions {
  apiKeys: string[];
  tokens: TokenService;
  limit: CallerLimit;
}

/** Registers the route check: call before any route is added. */
export function requireDeclaredAccess(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/v1') && route.url !== '/metrics') return;
    const access = route.config?.access;
    if (access === undefined) throw new Error(`route ${String(route.method)} ${route.url} declares no access (config.access, see src/tenants/scopes.ts)`);
    // The OpenAPI shows it: the security requirement names the scope, the description says it.
    // (A GET's HEAD twin shares its schema object: write it once.)
    if (route.schema !== undefined && route.schema.security === undefined) {
      const { note, security } = accessDocumentation(access);
      route.schema.security = security;
      const description = route.schema.description;
      route.schema.description = description ? `${description}\n\n**Access:** ${note}` : `**Access:** ${note}`;
    }
  });
}

export function registerAccess(app: FastifyInstance, options: AccessOptions): void {
  const digests = options.apiKeys.map(sha256);
  // One principal per admin key, made once: a request's caller is one of them, not a new object.
  const admins: Principal[] = options.apiKeys.map((key) => ({ kind: 'admin', keyDigest: keyDigest(key) }));
  const everyoneAdmin: Principal = { kind: 'admin', keyDigest: 'none' };
  const noCredential: Principal = { kind: 'anonymous' };
  app.decorateRequest('principal', null as never);

  const identify = async (header: string | undefined): Promise<Principal> => {
    const presented = bearerValue(header);
    if (presented !== undefined && presented.startsWith(TOKEN_PREFIX)) {
      const outcome = await options.tokens.authenticate(presented);
      return 'token' in outcome ? { kind: 'token', token: outcome.token } : { kind: 'anonymous', refused: outcome.refused };
    }
    if (digests.length === 0) return everyoneAdmin;
    if (presented === undefined) return noCredential;
    // Every key compared, digests of equal length: the time does not depend on which key, if any, matched.
    const digest = sha256(presented);
    let matched = -1;
    digests.forEach((d, i) => {
      if (timingSafeEqual(d, digest) && matched === -1) matched = i;
    });
    return matched === -1 ? { kind: 'anonymous', refused: 'Wrong API key' } : (admins[matched] ?? { kind: 'admin', keyDigest: 'key' });
  };

  app.addHook('onRequest', async (request, reply) => {
    const access = routeAccess(request);
    if (access === 'public') return;
    // The limit's checks are synchronous unless Redis has to be asked: awaited only then.
    options.limit.refuseGuessing(request);
    request.principal = await identify(request.headers.authorization);
    const counting = options.limit.count(request, reply);
    if (counting !== undefined) await counting;
    authorize(request, access);
  });
}

function bearerValue(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}

/**
 * Whether the caller of a long-lived request (an event stream) may still have it: false once its
 * access token is deleted or expired (the access hook judged it only when the request came). Admin
 * keys are configuration, so they stay valid. A token store that cannot be read does not end it.
 */
export async function stillAuthorized(request: FastifyRequest, tokens: TokenService): Promise<boolean> {
  if (request.principal.kind !== 'token') return true;
  const presented = bearerValue(request.headers.authorization);
  if (presented === undefined) return false;
  try {
    return 'token' in (await tokens.authenticate(presented));
  } catch {
    return true;
  }
}

function routeAccess(request: FastifyRequest): RouteAccess | undefined {
  const declared = request.routeOptions.config?.access;
  if (declared !== undefined) return declared;
  const path = request.url.split('?')[0] ?? '';
  return PUBLIC_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`)) ? 'public' : undefined;
}

/** Throws the refusal for this caller and route, if any. `undefined` access: an unknown path, which needs a caller. */
function authorize(request: FastifyRequest, access: RouteAccess | undefined): void {
  const principal = request.principal;
  if (principal.kind === 'anonymous') {
    const detail = principal.refused ?? 'Missing API key or access token (Authorization: Bearer <key>)';
    throw new GatewayError('UNAUTHORIZED', detail, { headers: { 'www-authenticate': 'Bearer realm="mailgw"' } });
  }
  if (principal.kind === 'admin' || access === undefined || access === 'public') return;
  const account = (request.params as { account?: unknown } | undefined)?.account;
  if (typeof account === 'string' && !canSeeAccount(principal, account)) {
    throw new GatewayError('ACCOUNT_NOT_FOUND', `No account ${account}`);
  }
  if (access === 'admin') throw new GatewayError('FORBIDDEN', 'This route takes an admin key (API_KEYS); access tokens cannot use it');
  if (!principal.token.scopes.includes(access)) {
    throw new GatewayError('FORBIDDEN', `This token lacks the ${access} scope this route needs (it has: ${principal.token.scopes.join(', ')})`);
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
