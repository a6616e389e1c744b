/**
 * Issue 12, point 8, embedded: a gateway process SIGKILLed and started again on the same DATA_DIR
 * (events and watcher state under it, no Redis) reports on resume exactly what changed while it
 * was down (test/support/restart-scenario.ts says what is asserted).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { it } from 'vitest';
import { killAndRestartScenario } from '../support/restart-scenario.js';
import { testServers } from '../support/servers.js';

const { dovecot } = testServers();

it('a gateway killed and restarted on its DATA_DIR reports on resume exactly the changes made meanwhile, in INBOX and another folder, each once, in order', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-restart-'));
  try {
    await killAndRestartScenario(dovecot, {
      DATA_DIR: dataDir,
      SECRET_KEY: randomBytes(32).toString('hex'),
      EVENTS_POLL_INTERVAL_MS: '500',
      EVENTS_STREAM_POLL_INTERVAL_MS: '500',
    });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
