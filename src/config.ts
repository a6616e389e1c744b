/**
 * The gateway's configuration: the only module that reads `process.env`.
 *
 * `loadConfig` validates every variable and reports all problems at once, one line each, so an
 * operator fixes a bad deployment in one go. Values are never echoed for secrets.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { parseSecretKey } from './accounts/sealing.js';
import { validateEgressEntries } from './net/egress.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  port: number;
  host: string;
  /** Bearer keys; empty means no auth, which is only allowed on loopback. */
  apiKeys: string[];
  redisUrl: string | undefined;
  /** Redis Cluster seed nodes (`host:port,...`); when set, `redisUrl` is ignored. */
  redisClusterNodes: string[];
  dataDir: string;
  /** Raw SECRET_KEY text (hex or base64 of 32 bytes); parsed by the account sealing module. */
  secretKey: string | undefined;
  egressAllow: string[];
  logLevel: LogLevel;
  imap: {
    maxSessionsPerAccount: number;
    /** An idle pooled session is logged out after this long. */
    sessionIdleTimeoutMs: number;
    /** How long a request may wait for a free session before `POOL_EXHAUSTED`. */
    acquireTimeoutMs: number;
  };
  /** With Redis: a session slot of a process that stopped renewing (crashed) is free after this long. */
  sessionSlotTtlMs: number;
  /** Bound on one upstream step (connect, greeting, a command) before `UPSTREAM_TIMEOUT`. */
  upstreamTimeoutMs: number;
  /** A download (raw message or attachment) whose client reads nothing for this long is ended. */
  downloadIdleTimeoutMs: number;
  /** Byte budget of the in-memory cache (used when no Redis is configured). */
  memoryCacheBytes: number;
  /** Largest message `POST .../messages` accepts (413 above). */
  maxUploadBytes: number;
  /** Cache entry lifetimes. */
  cacheTtl: { messageSeconds: number; listingSeconds: number };
  /** Listing pages are cached (and validated against the mailbox state) unless this is false. */
  listingCache: boolean;
  /** With Redis: how long a read account record is used before it is read again (other replicas' changes show within this). */
  accountRecordFreshMs: number;
  /**
   * Which proxies' `X-Forwarded-*` to believe (Fastify's trustProxy): none, a hop count, or their
   * addresses; `true` believes every hop, so the client address is whatever the client wrote.
   */
  trustProxy: boolean | number | string[];
  /** Origins whose browser pages may call the API (CORS); empty: CORS off, the gateway is for backends. */
  corsOrigins: string[];
  /** Requests per minute (0: unlimited) per admin key or token, per client address without one, and account creations per caller. */
  rateLimits: { perMinute: number; anonymousPerMinute: number; accountCreationPerMinute: number };
  /** The event source's watchers (API.md, Events). */
  watch: {
    /** Mailboxes other than INBOX are looked at this often where the server cannot push (no NOTIFY). */
    pollIntervalMs: number;
    /** Where it pushes (NOTIFY), the whole folder list is still compared this often, in case a push was missed. */
    reconcileIntervalMs: number;
    /** A POP3 maildrop's UIDL list is read this often. */
    pop3PollIntervalMs: number;
    /** IMAP watchers logging in and taking their first look at the same time, per process. */
    startConcurrency: number;
  };
  /** Bounds on what a client may take to send a request (src/http/server-options.ts). */
  http: {
    /** The whole request, headers and body, must arrive within this (408 after it). */
    requestTimeoutMs: number;
    /** The request line and headers must arrive within this. */
    headersTimeoutMs: number;
    /** An idle keep-alive connection is closed after this. */
    keepAliveTimeoutMs: number;
  };
  /** Swagger UI keeps an entered API key in the browser's localStorage across reloads. */
  docsPersistAuthorization: boolean;
  events: {
    /** Stored events are kept this long (API.md, Events); a resume point older than that gets `events.lost`. */
    retentionSeconds: number;
  };
  /** The SSE side of live events (src/events/subscription.ts, src/http/sse.ts). */
  eventStreams: EventStreamSettings;
  /** Webhook deliveries (src/webhooks/). */
  webhooks: {
    /** A failing delivery is retried for this long after its first attempt, then failed (API.md). */
    retryHours: number;
    /** Webhooks and accounts are read again this often, for changes made through other processes. */
    refreshIntervalMs: number;
  };
  /** Sending (src/outbox/). */
  outbox: {
    /** A message that keeps failing temporarily is retried for this long after it was queued, then failed (API.md). */
    retryHours: number;
    /** Sent, failed and cancelled entries stay listed this long. */
    keepHours: number;
    /** Messages sent at the same time, per process. */
    concurrency: number;
    /** Pooled SMTP connections per account and process. */
    maxConnectionsPerAccount: number;
  };
}

export interface EventStreamSettings {
  /** A `: ping` comment is sent after this long without an event (proxies drop silent connections). */
  pingIntervalMs: number;
  /** Each stream reads its accounts' logs this often even without an append hint (hints can be lost). */
  pollIntervalMs: number;
  /** A client with more than this many bytes buffered for it in the gateway is disconnected. */
  clientBufferBytes: number;
  /** A client whose socket does not drain within this long is disconnected (it resumes from its last id). */
  clientDrainTimeoutMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Loopback hosts the gateway may serve on without API keys. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const list = (name: string): string[] =>
    (env[name] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === '') return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    problems.push(`${name} must be true or false (got "${env[name]}")`);
    return fallback;
  };

  const port = int('PORT', 3000, 0, 65535);
  const host = env.HOST?.trim() || '127.0.0.1';
  const apiKeys = list('API_KEYS');
  // Short keys are guessable; a key with a space can never be presented as `Bearer <key>`.
  // Keys are never printed, only their position in the list.
  apiKeys.forEach((key, index) => {
    if (key.length < 16) problems.push(`API_KEYS: key #${index + 1} is shorter than 16 characters`);
    if (/\s/.test(key)) problems.push(`API_KEYS: key #${index + 1} contains whitespace`);
    // Values starting with mgw_ are taken for access tokens: such a key could never be used.
    if (key.startsWith('mgw_')) problems.push(`API_KEYS: key #${index + 1} starts with mgw_, which marks access tokens; choose another`);
  });
  if (apiKeys.length === 0 && !isLoopbackHost(host)) {
    problems.push(
      `HOST=${host} is not a loopback address and API_KEYS is empty: set API_KEYS (comma-separated bearer keys) ` +
        'or serve on 127.0.0.1 only',
    );
  }

  const redisUrl = env.REDIS_URL?.trim() || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    problems.push('REDIS_URL must start with redis:// or rediss://');
  }
  const redisClusterNodes = list('REDIS_CLUSTER_NODES');
  for (const node of redisClusterNodes) {
    if (!/^[^:\s]+:\d{1,5}$/.test(node)) problems.push(`REDIS_CLUSTER_NODES entry "${node}" must be host:port`);
  }

  const secretKey = env.SECRET_KEY?.trim() || undefined;
  if (secretKey === undefined && (redisUrl !== undefined || redisClusterNodes.length > 0)) {
    problems.push(
      'SECRET_KEY is required with Redis (32 bytes as 64 hex characters or base64): every gateway sharing the store must seal with the same key',
    );
  }
  if (secretKey !== undefined) {
    try {
      parseSecretKey(secretKey);
    } catch {
      // Reported with the other problems, never with the value.
      problems.push('SECRET_KEY must be 32 bytes given as 64 hex characters or base64 (the value is not shown)');
    }
  }

  const egressAllow = list('EGRESS_ALLOW');
  for (const problem of validateEgressEntries(egressAllow)) problems.push(`EGRESS_ALLOW entry ${problem}`);

  const corsOrigins = list('CORS_ORIGINS');
  for (const origin of corsOrigins) {
    if (origin !== '*' && !isOrigin(origin)) {
      problems.push(`CORS_ORIGINS entry "${origin}" must be an origin such as https://app.example.com (scheme, host, optional port; no path), or *`);
    }
  }

  const logLevelRaw = (env.LOG_LEVEL?.trim() || 'info').toLowerCase();
  const logLevel = LOG_LEVELS.includes(logLevelRaw as LogLevel) ? (logLevelRaw as LogLevel) : 'info';
  if (!LOG_LEVELS.includes(logLevelRaw as LogLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${env.LOG_LEVEL}")`);
  }

  const config: Config = {
    port,
    host,
    apiKeys,
    redisUrl,
    redisClusterNodes,
    dataDir: path.resolve(env.DATA_DIR?.trim() || './data'),
    secretKey,
    egressAllow,
    logLevel,
    imap: {
      maxSessionsPerAccount: int('IMAP_MAX_SESSIONS_PER_ACCOUNT', 4, 1, 64),
      sessionIdleTimeoutMs: int('IMAP_SESSION_IDLE_TIMEOUT_MS', 5 * 60_000, 1_000, 24 * 3_600_000),
      acquireTimeoutMs: int('POOL_ACQUIRE_TIMEOUT_MS', 10_000, 1, 600_000),
    },
    sessionSlotTtlMs: int('SESSION_SLOT_TTL_MS', 30_000, 3_000, 3_600_000),
    upstreamTimeoutMs: int('UPSTREAM_TIMEOUT_MS', 20_000, 100, 600_000),
    downloadIdleTimeoutMs: int('DOWNLOAD_IDLE_TIMEOUT_MS', 60_000, 100, 3_600_000),
    memoryCacheBytes: int('CACHE_MEMORY_BYTES', 64 * 1024 * 1024, 0, 16 * 1024 * 1024 * 1024),
    maxUploadBytes: int('MAX_UPLOAD_BYTES', 25 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    cacheTtl: {
      messageSeconds: int('CACHE_MESSAGE_TTL_SECONDS', 7 * 24 * 3600, 1, 365 * 24 * 3600),
      listingSeconds: int('CACHE_LISTING_TTL_SECONDS', 3600, 1, 30 * 24 * 3600),
    },
    trustProxy: trustProxySetting(env.TRUST_PROXY, problems),
    listingCache: bool('CACHE_LISTINGS', true),
    accountRecordFreshMs: int('ACCOUNT_RECORD_FRESH_MS', 1000, 0, 60_000),
    corsOrigins,
    rateLimits: {
      perMinute: int('RATE_LIMIT_PER_MINUTE', 6000, 0, 10_000_000),
      anonymousPerMinute: int('RATE_LIMIT_ANONYMOUS_PER_MINUTE', 60, 0, 10_000_000),
      accountCreationPerMinute: int('RATE_LIMIT_ACCOUNT_CREATION_PER_MINUTE', 30, 0, 10_000_000),
    },
    watch: {
      // API.md: at most 5 s. 2 s keeps other folders' events within about 2 s on servers without NOTIFY.
      pollIntervalMs: int('EVENTS_POLL_INTERVAL_MS', 2000, 100, 5000),
      // Longer than IMAP_SESSION_IDLE_TIMEOUT_MS' default: the look runs on a pool session, and a quiet
      // watched account then holds only its watcher's session between two looks.
      reconcileIntervalMs: int('EVENTS_RECONCILE_INTERVAL_MS', 600_000, 1000, 3_600_000),
      pop3PollIntervalMs: int('POP3_POLL_INTERVAL_MS', 60_000, 100, 3_600_000),
      // A thousand accounts to watch at start log in 16 at a time: about 5 s for all on a LAN server.
      startConcurrency: int('EVENTS_WATCH_START_CONCURRENCY', 16, 1, 1000),
    },
    http: {
      // A 25 MB upload (MAX_UPLOAD_BYTES' default) at about 2 Mbit/s.
      requestTimeoutMs: int('HTTP_REQUEST_TIMEOUT_MS', 120_000, 100, 3_600_000),
      headersTimeoutMs: int('HTTP_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
      // Longer than the 60 s idle timeout of common load balancers, so they, not we, close idle connections.
      keepAliveTimeoutMs: int('HTTP_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1, 3_600_000),
    },
    docsPersistAuthorization: bool('DOCS_PERSIST_AUTHORIZATION', false),
    events: {
      // At least a minute, so a client reconnecting at once never misses anything; at most 30 days,
      // the lifetime of the watch state stored beside the events in Redis.
      retentionSeconds: int('EVENTS_RETENTION_SECONDS', 86_400, 60, 30 * 86_400),
    },
    eventStreams: {
      pingIntervalMs: int('EVENTS_PING_INTERVAL_MS', 30_000, 10, 3_600_000),
      // A safety net only: every stream reads again whenever the hint channel reconnects (redis-channel.ts).
      pollIntervalMs: int('EVENTS_STREAM_POLL_INTERVAL_MS', 30_000, 10, 600_000),
      clientBufferBytes: int('EVENTS_CLIENT_BUFFER_BYTES', 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
      clientDrainTimeoutMs: int('EVENTS_CLIENT_DRAIN_TIMEOUT_MS', 30_000, 10, 3_600_000),
    },
    webhooks: {
      // At most the longest retention, so a held-back event is still in the log when it is retried.
      retryHours: int('WEBHOOK_RETRY_HOURS', 24, 1, 30 * 24),
      refreshIntervalMs: int('WEBHOOK_REFRESH_INTERVAL_MS', 2_000, 100, 600_000),
    },
    outbox: {
      retryHours: int('OUTBOX_RETRY_HOURS', 24, 1, 30 * 24),
      // A week: long enough to look up what became of last week's messages, then the store forgets them.
      keepHours: int('OUTBOX_KEEP_HOURS', 7 * 24, 1, 365 * 24),
      concurrency: int('OUTBOX_CONCURRENCY', 8, 1, 1000),
      // Two per account: most providers allow a handful of concurrent submissions per login.
      maxConnectionsPerAccount: int('SMTP_MAX_CONNECTIONS_PER_ACCOUNT', 2, 1, 32),
    },
  };
  // Node refuses a server whose headers may take longer than the whole request.
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    problems.push(
      `HTTP_HEADERS_TIMEOUT_MS (${config.http.headersTimeoutMs}) must not be larger than HTTP_REQUEST_TIMEOUT_MS (${config.http.requestTimeoutMs})`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** `https://app.example.com` or `http://127.0.0.1:8080`: what a browser sends as `Origin` (RFC 6454). */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
  } catch {
    return false;
  }
}

/** TRUST_PROXY: `false` (default), `true`, a hop count (`1`), or proxy addresses and CIDRs (`10.0.0.5,10.1.0.0/16`). */
function trustProxySetting(raw: string | undefined, problems: string[]): boolean | number | string[] {
  const value = raw?.trim().toLowerCase() ?? '';
  if (value === '' || ['0', 'false', 'no', 'off'].includes(value)) return false;
  if (['true', 'yes', 'on'].includes(value)) return true;
  if (/^\d{1,2}$/.test(value)) return Number(value);
  const entries = value.split(',').map((e) => e.trim()).filter((e) => e.length > 0);
  const bad = entries.filter((e) => isIP(e.split('/')[0] ?? '') === 0 || (e.includes('/') && !/^\d{1,3}$/.test(e.split('/')[1] ?? '')));
  if (bad.length > 0) {
    problems.push(`TRUST_PROXY must be false, true, a hop count or proxy addresses/CIDRs (got "${raw}")`);
    return false;
  }
  return entries;
}
