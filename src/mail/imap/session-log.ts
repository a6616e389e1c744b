/**
 * The logger one imapflow connection writes to. imapflow logs every line the server sends at debug
 * (`src: "s"`); it masks the credentials in the lines it sends, but a server may echo them back (a
 * refused LOGIN answered with the command line it got, a SASL challenge repeating the response), and
 * the errors it logs carry the server's text. So until the login has completed, what the server said
 * is withheld from every line: only that a line came and its size class are logged. After the login
 * the session logs as imapflow does.
 *
 * Lines go to our pino logger as a child, quieted to error unless the operator asked for debug, and
 * never with raw protocol bytes (connect.ts sets logRaw: false).
 */
import type { Logger } from 'pino';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
const LEVELS: readonly Level[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** The fields of an imapflow entry that are the gateway's or imapflow's own words, kept before login. */
const OWN_FIELDS = ['msg', 'cid', 'src', 'comment'] as const;

export interface SessionLog {
  /** What to hand imapflow as its `logger`. */
  logger: Record<Level, (entry: unknown) => void> & { isLevelEnabled(level: string): boolean };
  /** The login completed: from now on the server's lines are logged. */
  loggedIn(): void;
}

export function imapSessionLog(log: Logger): SessionLog {
  const child = log.child({ component: 'imapflow' });
  const verbose = ['debug', 'trace'].includes(log.level);
  if (!verbose && log.levelVal < log.levels.values.error!) child.level = 'error';
  let authenticated = false;

  const logger = { isLevelEnabled: (level: string) => child.isLevelEnabled(level) } as SessionLog['logger'];
  for (const level of LEVELS) {
    logger[level] = (entry: unknown) => {
      if (!child.isLevelEnabled(level)) return;
      child[level](authenticated ? entry : beforeLogin(entry));
    };
  }
  return { logger, loggedIn: () => (authenticated = true) };
}

/** An entry of the login exchange, without anything the server said. */
function beforeLogin(entry: unknown): Record<string, unknown> {
  if (typeof entry !== 'object' || entry === null) return { msg: '[withheld until logged in]' };
  const e = entry as Record<string, unknown>;
  const kept: Record<string, unknown> = {};
  for (const field of OWN_FIELDS) if (e[field] !== undefined) kept[field] = e[field];
  // A server line, or an error that may quote one: the fact, not the words.
  if (e.src === 's') kept.msg = '[server line withheld until logged in]';
  const err = e.err as { code?: unknown; name?: unknown } | undefined;
  if (err !== undefined) kept.err = { type: err.name, code: err.code };
  return kept;
}
