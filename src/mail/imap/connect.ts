/**
 * Opens one authenticated imapflow session for an account: egress check, dial the checked address
 * (the host name only travels as TLS SNI and for certificate checks), log in, all within a bound.
 */
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type { Logger } from 'pino';
import { isGatewayError } from '../../errors.js';
import type { EgressPolicy } from '../../net/egress.js';
import type { MailAccount } from '../account.js';
import { withDeadline } from '../../util/deadline.js';
import { mapImapError } from './errors.js';
import { imapSessionLog } from './session-log.js';

export interface ImapConnectOptions {
  egress: EgressPolicy;
  /** Bound on DNS + TCP/TLS + greeting + LOGIN together. */
  timeoutMs: number;
  /** Socket inactivity after which imapflow drops the connection; above the pool's idle TTL. */
  socketTimeoutMs: number;
  log: Logger;
}

export async function connectImap(account: MailAccount, options: ImapConnectOptions): Promise<ImapFlow> {
  const { credentials } = account;
  if ('password' in credentials) return connectWith(account, { user: account.username, pass: credentials.password }, options);
  if ('accessToken' in credentials) return connectWith(account, { user: account.username, accessToken: credentials.accessToken }, options);
  // OAuth2: a token for this login; refused (it may have been revoked or expired early), one
  // renewed token and one more try (API.md, OAuth2 accounts). imapflow picks OAUTHBEARER or XOAUTH2.
  const token = await credentials.oauth2.token();
  try {
    return await connectWith(account, { user: account.username, accessToken: token }, options);
  } catch (err) {
    if (!isGatewayError(err) || err.code !== 'UPSTREAM_AUTH_FAILED') throw err;
    const renewed = await credentials.oauth2.token(token);
    if (renewed === token) throw err;
    return connectWith(account, { user: account.username, accessToken: renewed }, options);
  }
}

async function connectWith(account: MailAccount, auth: ImapFlowOptions['auth'], options: ImapConnectOptions): Promise<ImapFlow> {
  const target = await options.egress.resolve(account.host);
  const sessionLog = imapSessionLog(options.log);
  const client = new ImapFlow({
    host: target.address,
    port: account.port,
    secure: account.security === 'tls',
    // 'starttls' must upgrade or fail: credentials never cross the wire in clear text by accident.
    doSTARTTLS: account.security === 'starttls' ? true : account.security === 'none' ? false : undefined,
    servername: target.servername,
    tls: {
      rejectUnauthorized: account.tlsVerify,
      ...(target.servername !== undefined ? { servername: target.servername } : {}),
    },
    auth,
    logger: sessionLog.logger as unknown as ImapFlowOptions['logger'],
    logRaw: false,
    // Pooled sessions run one command at a time on demand; IDLE would cost a DONE round trip per request.
    disableAutoIdle: true,
    // CONDSTORE and QRESYNC (RFC 7162): HIGHESTMODSEQ is part of the mailbox state our listings are
    // keyed on, and QRESYNC's VANISHED tells /changes which messages went away.
    qresync: true,
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.socketTimeoutMs,
    clientInfo: { name: 'mailgw' },
  });
  // Without a listener an 'error' event would crash the process; the pool watches 'close'.
  client.on('error', () => undefined);
  try {
    await withDeadline(client.connect(), options.timeoutMs, () => client.close());
  } catch (err) {
    client.close();
    throw mapImapError(err);
  }
  sessionLog.loggedIn();
  // Listing filters are dates (API.md): SINCE / BEFORE compare calendar days of INTERNALDATE. With
  // WITHIN (RFC 5032) imapflow would send YOUNGER / OLDER seconds counted from this process's clock
  // instead, so the boundary moved with the clocks' skew and was a time, not a day. The gateway uses
  // WITHIN for nothing else.
  client.capabilities.delete('WITHIN');
  return client;
}
