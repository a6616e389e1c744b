/**
 * Logger options shared by the app and the process entry. Secrets never reach a log line: the
 * Authorization header and any credential-shaped field are redacted wherever they appear.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import type { LogLevel } from './config.js';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'password',
  'accessToken',
  'sealedSecret',
  'secretKey',
  'secret',
  '*.password',
  '*.accessToken',
  '*.sealedSecret',
  '*.secretKey',
  '*.secret',
  '*.pass',
  'auth.pass',
];

export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
}

/** Lines are written to stdout in batches of this many bytes, or after FLUSH_INTERVAL_MS at the latest. */
const BATCH_BYTES = 4096;
const FLUSH_INTERVAL_MS = 1000;

/**
 * The process's logger, writing JSON lines to stdout in batches: one write per request costs a
 * system call each (a measurable share of a cached listing, docs/benchmarks.md), so lines are
 * gathered up to 4 KiB and written at least once a second. pino writes what is left when the
 * process exits, also on an uncaught exception; only a SIGKILL can lose the last second's lines.
 */
export function createLogger(level: LogLevel): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES });
  const timer = setInterval(() => {
    // flush() throws once the destination is closed (at exit, before this timer is cleared).
    if (!(destination as unknown as { destroyed?: boolean }).destroyed) destination.flush();
  }, FLUSH_INTERVAL_MS);
  timer.unref();
  destination.once('close', () => clearInterval(timer));
  return pino(loggerOptions(level), destination);
}
