/**
 * Builds the gateway for a test file: a real app (no listen; `inject`), its own data dir, an
 * egress policy that allows the loopback test servers, a silent logger unless asked for its lines.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp, type EventServices } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { REDACTED_PATHS } from '../../src/logger.js';
import type { DovecotUser, ProvidedDovecot } from './servers.js';

export interface TestGateway {
  app: FastifyInstance;
  dataDir: string;
  /** Every log line the app wrote (when built with captureLogs). */
  logs: string[];
  close(): Promise<void>;
}

export async function startGateway(
  env: Record<string, string> = {},
  options: { captureLogs?: boolean; events?: EventServices; downloadChunkBytes?: number } = {},
): Promise<TestGateway> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-test-'));
  // Rate limits off unless a test sets them: a test file makes more requests a minute than a client would
  // (test/integration/tokens.test.ts tests the limits themselves).
  const config = loadConfig({
    DATA_DIR: dataDir,
    EGRESS_ALLOW: '127.0.0.1/32',
    UPSTREAM_TIMEOUT_MS: '10000',
    RATE_LIMIT_PER_MINUTE: '0',
    RATE_LIMIT_ACCOUNT_CREATION_PER_MINUTE: '0',
    ...env,
  });
  const logs: string[] = [];
  const logger = options.captureLogs
    ? pino(
        { level: 'trace', redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            logs.push(chunk.toString('utf8'));
            cb();
          },
        }),
      )
    : pino({ level: 'silent' });
  const app = await buildApp(config, {
    logger,
    ...(options.events ? { events: options.events } : {}),
    ...(options.downloadChunkBytes !== undefined ? { downloadChunkBytes: options.downloadChunkBytes } : {}),
  });
  await app.ready();
  return {
    app,
    dataDir,
    logs,
    close: async () => {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export type Security = 'none' | 'starttls' | 'tls';

/** The account body for a test user on the run's Dovecot. */
export function imapAccountBody(
  dovecot: ProvidedDovecot,
  user: DovecotUser,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const security = (extra.security as Security | undefined) ?? 'none';
  return {
    protocol: 'imap',
    host: dovecot.host,
    port: security === 'tls' ? dovecot.imapsPort : dovecot.imapPort,
    security,
    username: user.username,
    password: user.password,
    tlsVerify: false,
    ...extra,
  };
}

/** Registers an IMAP account for `user` and answers its id. */
export async function createImapAccount(
  app: FastifyInstance,
  dovecot: ProvidedDovecot,
  user: DovecotUser,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/accounts', payload: imapAccountBody(dovecot, user, extra) });
  if (res.statusCode !== 201) throw new Error(`account create failed: ${res.statusCode} ${res.body}`);
  return (res.json() as { id: string }).id;
}

/** Registers a POP3 account (plain port) for `user` and answers its id. */
export async function createPop3Account(app: FastifyInstance, dovecot: ProvidedDovecot, user: DovecotUser): Promise<string> {
  const payload = { protocol: 'pop3', host: dovecot.host, port: dovecot.pop3Port, security: 'none', username: user.username, password: user.password };
  const res = await app.inject({ method: 'POST', url: '/v1/accounts', payload });
  if (res.statusCode !== 201) throw new Error(`account create failed: ${res.statusCode} ${res.body}`);
  return (res.json() as { id: string }).id;
}
