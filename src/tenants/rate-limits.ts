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
import { BatchedRedisStore, type Count } from './batched-redis-store.js';
import type { Principal } from './principal.js';

export interface RateLimitSettings {
  perMinute: number;
  anonymousPerMinute: number;
  accountCreationPerMinute: number;
}

const WINDOW_MS = 60_000;

/** The counter a request counts against. */
export function callerKey(principal: Principal, address: string): string {
  return principal.kind === 'anonymous' ? addressKey(address) : credentialKey(principal);
}

/** Admin keys' counters by digest: a handful, made once each rather than per request. */
const adminKeys = new Map<string, string>();

/** The counter of a key or token (the client address is not needed, so not asked for). */
function credentialKey(principal: Exclude<Principal, { kind: 'anonymous' }>): string {
  if (principal.kind === 'token') return `token:${principal.token.id}`;
  let key = adminKeys.get(principal.keyDigest);
  if (key === undefined) {
    key = `key:${principal.keyDigest}`;
    if (adminKeys.size < 1_000) adminKeys.set(principal.keyDigest, key);
  }
  return key;
}

/** IPv6 counters by address, so an address is parsed once, not per request; cleared when full. */
const ipv6Keys = new Map<string, string>();

/**
 * The counter of a client address. An IPv6 host usually holds a whole /64: counted as one address,
 * as the plugin's default does (normalizeIP). Anything else (IPv4, whatever a trusted proxy wrote)
 * is taken lower-cased, as normalizeIP takes it, without its IPv6 test (a long regular expression).
 */
function addressKey(address: string): string {
  if (!address.includes(':')) return `addr:${address.toLowerCase()}`;
  let key = ipv6Keys.get(address);
  if (key === undefined) {
    if (ipv6Keys.size >= 10_000) ipv6Keys.clear();
    key = `addr:${normalizeIP(address, 64)}`;
    ipv6Keys.set(address, key);
  }
  return key;
}

function limitOf(principal: Principal, settings: RateLimitSettings): number {
  return principal.kind === 'anonymous' ? settings.anonymousPerMinute : settings.perMinute;
}

export interface CallerLimit {
  /**
   * Counts the request against its caller (key, token, or address without one); throws RATE_LIMITED
   * when over. Synchronous (undefined) when the count is known in this process, as it mostly is; a
   * promise only when Redis has to be asked (batched-redis-store.ts).
   */
  count(request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined;
  /**
   * Before a credential is even looked at: an address over its limit for requests without a valid
   * key gets 429 whatever it presents, so a right guess cannot be told from a wrong one by its answer.
   * Synchronous: it reads what this process knows of the address's count.
   */
  refuseGuessing(request: FastifyRequest): void;
}

/**
 * Registers the limiter and returns the per-caller check, which access.ts runs once the caller is
 * known: it sets `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds), and throws
 * RATE_LIMITED with `Retry-After` when the caller is over.
 *
 * The plugin serves the per-route limit (account creation). The per-caller check, which every request
 * pays, asks the same kind of store directly, synchronously unless Redis is asked: the plugin's
 * `createRateLimit()` check cost about 5 µs a request in promises, awaits and closures, this well under
 * one (bench row j, docs/benchmarks.md).
 */
export async function registerRateLimits(app: FastifyInstance, settings: RateLimitSettings, redis?: Redis | Cluster): Promise<CallerLimit> {
  const options: RateLimitPluginOptions = {
    global: false,
    timeWindow: WINDOW_MS,
    keyGenerator: (request) => callerKey(request.principal, request.ip),
    max: (request) => limitOf(request.principal, settings),
    skipOnError: true,
    enableDraftSpec: true,
    errorResponseBuilder: (_request, context) => rateLimited(context.max, Math.ceil(context.ttl / 1000), 'this caller'),
    // Counted in Redis across processes, in batches (batched-redis-store.ts); in memory without it.
    ...(redis ? { store: storeClass(redis) } : {}),
  };
  await app.register(rateLimit, options);
  // Redis keys as the plugin's store would have them (one prefix, then the caller), so processes agree.
  // Keys and tokens apart from client addresses: while no request without a valid key has come (the
  // usual case), the guessing check has nothing to look up.
  const callers = new BatchedRedisStore(redis, keys.rateLimitPrefix());
  const addresses = new BatchedRedisStore(redis, keys.rateLimitPrefix());
  const limitHeaders = new Map([settings.perMinute, settings.anonymousPerMinute].map((max) => [max, String(max)]));

  const refuseGuessing = (request: FastifyRequest): void => {
    const max = settings.anonymousPerMinute;
    if (max === 0 || addresses.empty) return;
    const seen = addresses.peek(addressKey(request.ip));
    if (seen.current >= max) throw rateLimited(max, Math.max(1, Math.ceil(seen.ttl / 1000)), 'this client address (requests without a valid key)');
  };

  /** The RateLimit headers of a counted request, and its refusal when it is over. */
  const answer = (principal: Principal, reply: FastifyReply, max: number, counted: Count): void => {
    const resetSeconds = Math.max(0, Math.ceil(counted.ttl / 1000));
    void reply
      .header('ratelimit-limit', limitHeaders.get(max) ?? String(max))
      .header('ratelimit-remaining', String(Math.max(0, max - counted.current)))
      .header('ratelimit-reset', String(resetSeconds));
    if (counted.current > max) {
      throw rateLimited(max, Math.max(1, resetSeconds), principal.kind === 'token' ? 'this token' : principal.kind === 'admin' ? 'this key' : 'this client address');
    }
  };

  const count = (request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined => {
    const principal = request.principal;
    const max = limitOf(principal, settings);
    if (max === 0) return undefined;
    const counted = principal.kind === 'anonymous' ? addresses.hit(addressKey(request.ip), WINDOW_MS) : callers.hit(credentialKey(principal), WINDOW_MS);
    if (counted instanceof Promise) return counted.then((c) => answer(principal, reply, max, c));
    answer(principal, reply, max, counted);
    return undefined;
  };
  return { count, refuseGuessing };
}

/** The route option that adds the account-creation limit (none when it is 0). */
export function accountCreationLimit(
  settings: RateLimitSettings,
): { rateLimit: { max: number; timeWindow: number } } | { rateLimit: false } {
  if (settings.accountCreationPerMinute === 0) return { rateLimit: false };
  return { rateLimit: { max: settings.accountCreationPerMinute, timeWindow: WINDOW_MS } };
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
