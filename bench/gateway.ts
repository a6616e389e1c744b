/**
 * The gateway under test, as a separate process configured through its environment like a
 * deployment: Redis for accounts and cache (the multi-replica setup), loopback mail servers allowed,
 * default pool size and log level (`info`; the log goes to a file, not to a terminal).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DovecotUser } from '../test/support/dovecot.js';
import { startChild, type ChildServer } from './processes.js';
import type { MailServers } from './servers.js';

export interface Gateway extends ChildServer {
  /**
   * Registers an account (the gateway logs in once); answers the HTTP status and the account id.
   * `extra`: more fields of the account body (`email`, `smtp`).
   */
  createAccount(id: string, protocol: 'imap' | 'pop3', user: DovecotUser, extra?: Record<string, unknown>): Promise<{ status: number; body: string }>;
  deleteAccount(id: string): Promise<void>;
  /** `/v1/accounts/<id>/mailboxes/INBOX/messages?limit=50` as a full URL. */
  listingUrl(id: string): string;
}

/**
 * The allocator settings the gateway ships with (Dockerfile, `npm start`, docs/operations.md): the
 * bench measures the gateway as deployed, and gives row (g)'s imapflow client the same settings so
 * that only the gateway's own work differs. `--gateway-env=MALLOC_MMAP_THRESHOLD_= --gateway-env=MALLOC_TRIM_THRESHOLD_=`
 * measures without (an empty value removes a variable).
 */
export const ALLOCATOR_ENV = { MALLOC_MMAP_THRESHOLD_: '16777216', MALLOC_TRIM_THRESHOLD_: '134217728' };

/**
 * The rate limits the bench runs with: the per-caller check is on (counted in Redis, as deployed), with
 * a limit no row reaches, so every row pays for the check and none is refused (docs/benchmarks.md).
 * `--gateway-env=RATE_LIMIT_PER_MINUTE=0` measures without the check.
 */
export const RATE_LIMIT_ENV = { RATE_LIMIT_PER_MINUTE: '10000000', RATE_LIMIT_ACCOUNT_CREATION_PER_MINUTE: '0' };

/** One key per bench run, shared by every gateway process of the run (they share Redis). */
const SECRET_KEY = randomBytes(32).toString('hex');

export async function startGateway(
  servers: MailServers,
  options: { name: string; listingCache: boolean; profile: boolean; env?: Record<string, string> },
): Promise<Gateway> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-bench-data-'));
  let child: ChildServer;
  try {
    child = await startChild({
      name: options.name,
      script: 'src/server.ts',
      readyPath: '/ready',
      profile: options.profile,
      env: withoutEmpty({
        DATA_DIR: dataDir,
        REDIS_URL: servers.redis.url,
        SECRET_KEY,
        EGRESS_ALLOW: '127.0.0.1/32',
        CACHE_LISTINGS: String(options.listingCache),
        ...ALLOCATOR_ENV,
        ...RATE_LIMIT_ENV,
        ...options.env,
      }),
    });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const { dovecot } = servers;
  return {
    ...child,
    stop: async () => {
      await child.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
    createAccount: async (id, protocol, user, extra = {}) => {
      const res = await fetch(`${child.url}/v1/accounts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          id,
          protocol,
          host: '127.0.0.1',
          port: protocol === 'imap' ? dovecot.imapPort : dovecot.pop3Port,
          security: 'none',
          username: user.username,
          password: user.password,
          ...extra,
        }),
      });
      return { status: res.status, body: await res.text() };
    },
    deleteAccount: async (id) => {
      const res = await fetch(`${child.url}/v1/accounts/${encodeURIComponent(id)}`, { method: 'DELETE' });
      await res.arrayBuffer();
    },
    listingUrl: (id) => `${child.url}/v1/accounts/${encodeURIComponent(id)}/mailboxes/INBOX/messages?limit=50`,
  };
}

/** Creates an account and fails loudly unless the gateway answers 201. */
export async function mustCreateAccount(gateway: Gateway, id: string, protocol: 'imap' | 'pop3', user: DovecotUser): Promise<void> {
  const res = await gateway.createAccount(id, protocol, user);
  // 409: a gateway started earlier in this run (they share Redis) registered it already.
  if (res.status !== 201 && res.status !== 409) throw new Error(`creating account ${id}: ${res.status} ${res.body}`);
}

function withoutEmpty(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
}
