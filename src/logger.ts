/**
 * Logger options shared by the app and the process entry. Secrets never reach a log line: the
 * Authorization header and any credential-shaped field are redacted wherever they appear.
 */
import type { LoggerOptions } from 'pino';
import type { LogLevel } from './config.js';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'password',
  'accessToken',
  'sealedSecret',
  'secretKey',
  '*.password',
  '*.accessToken',
  '*.sealedSecret',
  '*.secretKey',
  '*.pass',
  'auth.pass',
];

export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
}
