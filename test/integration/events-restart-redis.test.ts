/**
 * Issue 12, point 8, with Redis: a gateway process SIGKILLed and started again on the same Redis
 * (events and watcher state in it) reports on resume exactly what changed while it was down
 * (test/support/restart-scenario.ts says what is asserted). The restarted process is a new lease
 * owner: it takes the watch over once the dead process's lease expires (SESSION_SLOT_TTL_MS).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { startRedis, type RedisServer } from '../support/redis.js';
import { killAndRestartScenario } from '../support/restart-scenario.js';
import { testServers } from '../support/servers.js';

const { dovecot } = testServers();
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

it('a gateway killed and restarted on its Redis reports on resume exactly the changes made meanwhile, in INBOX and another folder, each once, in order', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-restart-'));
  try {
    await killAndRestartScenario(dovecot, {
      DATA_DIR: dataDir,
      REDIS_URL: redis.url,
      SECRET_KEY: randomBytes(32).toString('hex'),
      SESSION_SLOT_TTL_MS: '3000',
      EVENTS_POLL_INTERVAL_MS: '500',
      EVENTS_STREAM_POLL_INTERVAL_MS: '500',
    });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
