/**
 * Configuration: what an operator gets for a good and a bad environment. A bad deployment must fail
 * at start with every problem listed at once, and never print a secret it was given.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, isLoopbackHost, loadConfig } from '../../src/config.js';

const HEX_KEY = randomBytes(32).toString('hex');
const API_KEY = `key-${randomBytes(16).toString('hex')}`;

/** The ConfigError loadConfig throws for `env` (fails the test if it does not throw one). */
function problemsOf(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected loadConfig to refuse this environment');
}

describe('loadConfig defaults', () => {
  it('serves on loopback port 3000 without keys, with a file store and nothing allowed for egress', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      apiKeys: [],
      redisUrl: undefined,
      secretKey: undefined,
      egressAllow: [],
      logLevel: 'info',
      upstreamTimeoutMs: 20_000,
      trustProxy: false,
    });
    expect(config.imap.maxSessionsPerAccount).toBe(4);
  });

  it('reads the values it is given', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      API_KEYS: ` ${API_KEY} , ${API_KEY}-2 `,
      REDIS_URL: 'redis://127.0.0.1:6379/0',
      SECRET_KEY: HEX_KEY,
      EGRESS_ALLOW: '10.0.0.0/8, mail.internal, fd00::/8,192.168.1.7',
      LOG_LEVEL: 'DEBUG',
      UPSTREAM_TIMEOUT_MS: '1500',
      IMAP_MAX_SESSIONS_PER_ACCOUNT: '8',
      TRUST_PROXY: 'yes',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      apiKeys: [API_KEY, `${API_KEY}-2`],
      redisUrl: 'redis://127.0.0.1:6379/0',
      secretKey: HEX_KEY,
      egressAllow: ['10.0.0.0/8', 'mail.internal', 'fd00::/8', '192.168.1.7'],
      logLevel: 'debug',
      upstreamTimeoutMs: 1500,
      trustProxy: true,
    });
    expect(config.imap.maxSessionsPerAccount).toBe(8);
  });
});

describe('HTTP bounds on slow clients and the docs page', () => {
  it('bounds requests, headers and idle keep-alive by default, and keeps no API key in the browser', () => {
    expect(loadConfig({}).http).toEqual({ requestTimeoutMs: 120_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 72_000 });
    expect(loadConfig({}).docsPersistAuthorization).toBe(false);
    const set = loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '30000', HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '5000', DOCS_PERSIST_AUTHORIZATION: 'true' });
    expect(set.http).toEqual({ requestTimeoutMs: 30_000, headersTimeoutMs: 5_000, keepAliveTimeoutMs: 5_000 });
    expect(set.docsPersistAuthorization).toBe(true);
  });

  it('refuses a request timeout of 0 (no bound) and headers allowed longer than the whole request', () => {
    expect(problemsOf({ HTTP_REQUEST_TIMEOUT_MS: '0' }).problems).toEqual(['HTTP_REQUEST_TIMEOUT_MS must be an integer from 100 to 3600000 (got "0")']);
    expect(problemsOf({ HTTP_REQUEST_TIMEOUT_MS: '5000', HTTP_HEADERS_TIMEOUT_MS: '6000' }).problems).toEqual([
      'HTTP_HEADERS_TIMEOUT_MS (6000) must not be larger than HTTP_REQUEST_TIMEOUT_MS (5000)',
    ]);
  });
});

describe('serving beyond loopback needs API keys', () => {
  it.each(['0.0.0.0', '::', '192.168.1.10', 'gateway.example.com', '10.0.0.1'])('refuses HOST=%s without API_KEYS', (host) => {
    const error = problemsOf({ HOST: host });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain(`HOST=${host}`);
    expect(error.problems[0]).toContain('API_KEYS');
    expect(error.message).toMatch(/^Invalid configuration:\n {2}- /);
  });

  it.each(['127.0.0.1', '127.0.0.53', 'localhost', '::1', '[::1]'])('serves HOST=%s without keys', (host) => {
    expect(loadConfig({ HOST: host }).host).toBe(host);
    expect(isLoopbackHost(host)).toBe(true);
  });

  it('serves beyond loopback with keys', () => {
    expect(loadConfig({ HOST: '0.0.0.0', API_KEYS: API_KEY }).apiKeys).toEqual([API_KEY]);
  });

  it('refuses keys that are short or contain spaces, without printing them', () => {
    const short = 'tiny-key';
    const spaced = 'a key with spaces in it';
    const error = problemsOf({ API_KEYS: `${API_KEY},${short},${spaced}` });
    expect(error.problems).toHaveLength(2);
    expect(error.problems.join('\n')).toMatch(/key #2 .*16 characters/);
    expect(error.problems.join('\n')).toMatch(/key #3 .*whitespace/);
    for (const secret of [short, spaced, API_KEY]) expect(error.message).not.toContain(secret);
  });
});

describe('field validation', () => {
  it.each(['abc', '-1', '65536', '80.5', '1e9'])('refuses PORT=%s', (port) => {
    const error = problemsOf({ PORT: port });
    expect(error.problems).toEqual([expect.stringMatching(/^PORT must be an integer from 0 to 65535/)]);
  });

  it.each(['verbose', 'warning', '5'])('refuses LOG_LEVEL=%s and names the allowed levels', (level) => {
    const error = problemsOf({ LOG_LEVEL: level });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(/^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/);
  });

  it('refuses an upstream timeout too small to ever connect, and non-boolean flags', () => {
    expect(problemsOf({ UPSTREAM_TIMEOUT_MS: '5' }).problems[0]).toMatch(/^UPSTREAM_TIMEOUT_MS/);
    expect(problemsOf({ TRUST_PROXY: 'maybe' }).problems[0]).toMatch(/^TRUST_PROXY must be false, true, a hop count or proxy addresses/);
    expect(problemsOf({ IMAP_MAX_SESSIONS_PER_ACCOUNT: '0' }).problems[0]).toMatch(/^IMAP_MAX_SESSIONS_PER_ACCOUNT/);
  });

  it('requires SECRET_KEY with Redis (every replica must seal with the same key)', () => {
    const withUrl = problemsOf({ REDIS_URL: 'redis://127.0.0.1:6379' });
    expect(withUrl.problems).toEqual([expect.stringMatching(/^SECRET_KEY is required with Redis/)]);
    const withCluster = problemsOf({ REDIS_CLUSTER_NODES: '127.0.0.1:7000,127.0.0.1:7001' });
    expect(withCluster.problems).toEqual([expect.stringMatching(/^SECRET_KEY is required with Redis/)]);
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', SECRET_KEY: HEX_KEY }).secretKey).toBe(HEX_KEY);
    expect(loadConfig({ SECRET_KEY: randomBytes(32).toString('base64') }).secretKey).toBeDefined();
  });

  it('refuses a malformed SECRET_KEY without printing it', () => {
    for (const bad of [HEX_KEY.slice(2), `${HEX_KEY}00`, randomBytes(31).toString('base64'), 'correct horse battery staple']) {
      const error = problemsOf({ SECRET_KEY: bad });
      expect(error.problems).toEqual([expect.stringMatching(/^SECRET_KEY must be 32 bytes/)]);
      expect(error.message).not.toContain(bad);
    }
  });

  it('refuses a REDIS_URL that is not redis:// without printing it (it may carry a password)', () => {
    const url = 'http://user:redis-password-123@cache:6379';
    const error = problemsOf({ REDIS_URL: url, SECRET_KEY: HEX_KEY });
    expect(error.problems).toEqual([expect.stringMatching(/^REDIS_URL must start with redis:\/\//)]);
    expect(error.message).not.toContain('redis-password-123');
  });

  it('checks every EGRESS_ALLOW entry with the egress policy rules', () => {
    const error = problemsOf({ EGRESS_ALLOW: '10.0.0.0/8,10.0.0.0/33,*.example.com,imap://mail.example.com,host:993,999.1.1.1' });
    expect(error.problems).toHaveLength(5);
    for (const entry of ['10.0.0.0/33', '*.example.com', 'imap://mail.example.com', 'host:993', '999.1.1.1']) {
      expect(error.problems.some((p) => p.startsWith('EGRESS_ALLOW') && p.includes(`"${entry}"`)), entry).toBe(true);
    }
  });
});

describe('all problems at once', () => {
  it('lists every problem of a bad environment in one error, secrets never echoed', () => {
    const secretKey = 'not-a-real-key-but-secret-anyway';
    const shortKey = 'short-api-key';
    const error = problemsOf({
      HOST: '0.0.0.0',
      PORT: 'eighty',
      LOG_LEVEL: 'chatty',
      REDIS_URL: 'redis://:hunter2-password@127.0.0.1:6379',
      API_KEYS: '',
      SECRET_KEY: '',
      EGRESS_ALLOW: 'mail.example.com:143',
      UPSTREAM_TIMEOUT_MS: 'soon',
    });
    const text = error.problems.join('\n');
    expect(error.problems).toHaveLength(6);
    for (const name of ['HOST=0.0.0.0', 'PORT', 'LOG_LEVEL', 'SECRET_KEY', 'EGRESS_ALLOW', 'UPSTREAM_TIMEOUT_MS']) {
      expect(text, name).toContain(name);
    }
    expect(error.message).not.toContain('hunter2-password');

    const withSecrets = problemsOf({ SECRET_KEY: secretKey, API_KEYS: shortKey, PORT: 'x' });
    expect(withSecrets.problems).toHaveLength(3);
    expect(withSecrets.message).not.toContain(secretKey);
    expect(withSecrets.message).not.toContain(shortKey);
  });
});

describe('TRUST_PROXY and keys reserved for tokens', () => {
  it('takes a hop count or proxy addresses, and refuses anything else', () => {
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.5, 10.1.0.0/16' }).trustProxy).toEqual(['10.0.0.5', '10.1.0.0/16']);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(() => loadConfig({ TRUST_PROXY: 'proxy.example' })).toThrow(/TRUST_PROXY/);
  });

  it('refuses an API key that would be taken for an access token', () => {
    expect(() => loadConfig({ API_KEYS: `mgw_${'a'.repeat(40)}` })).toThrow(/starts with mgw_/);
  });
});

describe('event retention', () => {
  it('keeps events a day by default and takes a minute to 30 days', () => {
    expect(loadConfig({}).events.retentionSeconds).toBe(86_400);
    expect(loadConfig({ EVENTS_RETENTION_SECONDS: '3600' }).events.retentionSeconds).toBe(3_600);
    expect(problemsOf({ EVENTS_RETENTION_SECONDS: '10' }).problems).toEqual(['EVENTS_RETENTION_SECONDS must be an integer from 60 to 2592000 (got "10")']);
    expect(problemsOf({ EVENTS_RETENTION_SECONDS: '1.5' }).problems).toHaveLength(1);
  });
});
