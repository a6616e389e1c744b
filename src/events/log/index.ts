/**
 * The event log the gateway uses: Redis Streams when a Redis client is given (several processes may
 * share it), else files under the data directory (the embedded setup, one process).
 */
import type { Logger } from 'pino';
import type { RedisClient } from '../../cache/redis-connection.js';
import type { EventLog } from '../types.js';
import { FileEventLog } from './file-event-log.js';
import { RedisEventLog } from './redis-event-log.js';

export { FileEventLog, type FileEventLogOptions } from './file-event-log.js';
export { RedisEventLog, type RedisEventLogOptions } from './redis-event-log.js';
export { ZERO_ID, compareEventIds, isValidEventId } from './event-id.js';

export interface EventLogSettings {
  /** How long events are kept: `EVENTS_RETENTION_SECONDS` × 1000. */
  retentionMs: number;
  /** The shared Redis connection (or Cluster client); when absent the log is kept in files. */
  redis?: RedisClient;
  /** The gateway's data directory (`DATA_DIR`); the file log lives in its `events/` folder. */
  dataDir: string;
  log?: Logger;
}

export function createEventLog(settings: EventLogSettings): EventLog {
  if (settings.redis !== undefined) return new RedisEventLog(settings.redis, { retentionMs: settings.retentionMs });
  return new FileEventLog({ dataDir: settings.dataDir, retentionMs: settings.retentionMs, log: settings.log });
}
