/**
 * Opens one logged-in POP3 session for an account: egress check, dial the checked address (the host
 * name only travels as TLS SNI and for the certificate check), greeting, CAPA, STLS when asked, login.
 */
import { isGatewayError } from '../../errors.js';
import type { EgressPolicy } from '../../net/egress.js';
import type { Pop3Credentials } from './auth.js';
import type { MailAccount } from '../account.js';
import { Pop3Client } from './client.js';

export interface Pop3ConnectOptions {
  egress: EgressPolicy;
  /** Per-step bound on the server's silence (see Pop3ClientOptions.timeoutMs). */
  timeoutMs: number;
  readerStallTimeoutMs?: number | undefined;
  /** Extra trust anchors for TLS (tests: the test server's self-signed certificate). */
  ca?: string | Buffer | Array<string | Buffer> | undefined;
  onCommand?: ((verb: string) => void) | undefined;
}

export async function connectPop3(account: MailAccount, options: Pop3ConnectOptions): Promise<Pop3Client> {
  const { credentials } = account;
  if (!('oauth2' in credentials)) return connectWith(account, credentials, options);
  // OAuth2: a token for this login; refused, one renewed token and one more try on a new connection.
  const { oauth2 } = credentials;
  const token = await oauth2.token();
  try {
    return await connectWith(account, { accessToken: token, initialResponse: oauth2.initialResponse }, options);
  } catch (err) {
    if (!isGatewayError(err) || err.code !== 'UPSTREAM_AUTH_FAILED') throw err;
    const renewed = await oauth2.token(token);
    if (renewed === token) throw err;
    return connectWith(account, { accessToken: renewed, initialResponse: oauth2.initialResponse }, options);
  }
}

async function connectWith(account: MailAccount, credentials: Pop3Credentials, options: Pop3ConnectOptions): Promise<Pop3Client> {
  const target = await options.egress.resolve(account.host);
  const client = await Pop3Client.connect({
    host: target.address,
    port: account.port,
    security: account.security,
    servername: target.servername,
    tlsVerify: account.tlsVerify,
    ca: options.ca,
    timeoutMs: options.timeoutMs,
    readerStallTimeoutMs: options.readerStallTimeoutMs,
    onCommand: options.onCommand,
  });
  try {
    await client.login(account.username, credentials);
  } catch (err) {
    // A session that failed to log in has nothing to commit: drop it without QUIT.
    client.destroy();
    throw err;
  }
  return client;
}
