/**
 * Request limits per caller (API.md, "Access tokens and limits"), on @fastify/rate-limit: counted
 * across gateway processes in Redis (one key per caller and minute under `keys.rateLimitPrefix()`,
 * added to in batches by batched-redis-store.ts), or by the plugin's in-memory store in the embedded mode.
 *
 * - Every request with an admin key or a token counts against that key's or token's
 *   `RATE_LIMIT_PER_MINUTE`; every other request against its client address's
 *   `RATE_LIMIT_ANONYMOUS_PER_MINUTE` (so guessing keys is slow too).
 * - Account creation, which dials out to a mail server, has its own lower limit on top
 *   (`RATE_LIMIT_ACCOUNT_CREATION_PER_MINUTE`), declared on the route (`accountCreationLimit`).
 * - `0` turns a limit off. A Redis outage lets requests through rather than failing them.
 */
import { createHash } from 'node:crypto';
import rateLimit, { normalizeIP, type RateLimitPluginOptions } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Cluster, Redis } from 'ioredis';
import { keys } from '../cache/keys.js';
import { GatewayError } from '../errors.js';
import { BatchedRedisStore } from './batched-redis-store.js';
import type { Principal } from './principal.js';

export interface RateLimitSettings {
  perMinute: number;
  anonymousPerMinute: number;
  accountCreationPerMinute: number;
}

const WINDOW_MS = 60_000;

/** The counter a request counts against. */
export function callerKey(principal: Principal, address: string): string {
  switch (principal.kind) {
    case 'token':
      return `token:${principal.token.id}`;
    case 'admin':
      return `key:${principal.keyDigest}`;
    default:
      // An IPv6 host usually holds a whole /64: counted as one address, as the plugin's default does.
      return `addr:${normalizeIP(address, 64)}`;
  }
}

function limitOf(principal: Principal, settings: RateLimitSettings): number {
  return principal.kind === 'anonymous' ? settings.anonymousPerMinute : settings.perMinute;
}

export interface CallerLimit {
  /** Counts the request against its caller (key, token, or address without one); throws RATE_LIMITED when over. */
  count(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  /**
   * Before a credential is even looked at: an address over its limit for requests without a valid
   * key gets 429 whatever it presents, so a right guess cannot be told from a wrong one by its answer.
   */
  refuseGuessing(request: FastifyRequest): Promise<void>;
}

/**
 * Registers the limiter and returns the per-caller check, which access.ts runs once the caller is
 * known: it sets `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds), and throws
 * RATE_LIMITED with `Retry-After` when the caller is over.
 */
export async function registerRateLimits(app: FastifyInstance, settings: RateLimitSettings, redis?: Redis | Cluster): Promise<CallerLimit> {
  const options: RateLimitPluginOptions = {
    global: false,
    timeWindow: WINDOW_MS,
    keyGenerator: (request) => callerKey(request.principal, request.ip),
    max: (request) => limitOf(request.principal, settings),
    // Only when a limit is off (0): otherwise every request would pay for the check.
    ...(settings.perMinute === 0 || settings.anonymousPerMinute === 0 ? { allowList: (request: FastifyRequest) => limitOf(request.principal, settings) === 0 } : {}),
    skipOnError: true,
    enableDraftSpec: true,
    errorResponseBuilder: (_request, context) => rateLimited(context.max, Math.ceil(context.ttl / 1000), 'this caller'),
    // Counted in Redis across processes, in batches (batched-redis-store.ts); in memory without it.
    ...(redis ? { store: storeClass(redis) } : {}),
  };
  await app.register(rateLimit, options);
  const check = app.createRateLimit();
  const refuseGuessing = async (request: FastifyRequest): Promise<void> => {
    if (settings.anonymousPerMinute === 0) return;
    const known = request.principal;
    request.principal = { kind: 'anonymous' };
    try {
      const seen = await check(request, { increment: false });
      if (!seen.isAllowed && seen.remaining === 0) {
        throw rateLimited(seen.max, Math.max(1, seen.ttlInSeconds), 'this client address (requests without a valid key)');
      }
    } finally {
      request.principal = known;
    }
  };
  const count = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const result = await check(request);
    if (result.isAllowed) return;
    const resetSeconds = Math.max(0, result.ttlInSeconds);
    void reply
      .header('ratelimit-limit', String(result.max))
      .header('ratelimit-remaining', String(result.remaining))
      .header('ratelimit-reset', String(resetSeconds));
    if (result.isExceeded) {
      throw rateLimited(result.max, Math.max(1, resetSeconds), request.principal.kind === 'token' ? 'this token' : request.principal.kind === 'admin' ? 'this key' : 'this client address');
    }
  };
  return { count, refuseGuessing };
}

/** The route option that adds the account-creation limit (none when it is 0). */
export function accountCreationLimit(
  settings: RateLimitSettings,
): { rateLimit: { max: number; timeWindow: number; allowList: undefined } } | { rateLimit: false } {
  if (settings.accountCreationPerMinute === 0) return { rateLimit: false };
  // allowList reset: the per-caller limit being off (0) must not switch this one off too.
  return { rateLimit: { max: settings.accountCreationPerMinute, timeWindow: WINDOW_MS, allowList: undefined } };
}

/** The plugin constructs its store itself (with its own options): a class bound to our Redis client. */
function storeClass(redis: Redis | Cluster): NonNullable<RateLimitPluginOptions['store']> {
  const prefix = keys.rateLimitPrefix();
  return class extends BatchedRedisStore {
    constructor() {
      super(redis, prefix);
    }
  } as unknown as NonNullable<RateLimitPluginOptions['store']>;
}

function rateLimited(max: number, retryAfterSeconds: number, who: string): GatewayError {
  return new GatewayError('RATE_LIMITED', `Rate limit of ${max} requests per minute exceeded for ${who}; retry in ${retryAfterSeconds} s`, {
    retryAfterSeconds,
  });
}

/** A short, stable, non-reversible name for an admin key, for counters and logs. */
export function keyDigest(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
