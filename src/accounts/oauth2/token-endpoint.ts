/**
 * One refresh at an OAuth2 token endpoint: RFC 6749 §6 (the refresh_token grant), the answer of
 * §5.1 (`access_token`, `expires_in`, a rotated `refresh_token` when the provider rotates), the errors
 * of §5.2. The client authenticates in the body (`client_secret_post`, §2.3.1), as Google and
 * Microsoft accept; a public client sends no secret.
 *
 * The host is resolved and checked by the egress policy each time, and the address checked is the
 * address dialled (the URL's host only in the Host header and as TLS SNI), as for webhooks. The whole
 * exchange is bounded by `timeoutMs` (UPSTREAM_TIMEOUT_MS), redirects are not followed, and at most
 * 64 KiB of the answer are read. Nothing secret reaches an error message.
 */
import http from 'node:http';
import https from 'node:https';
import { GatewayError } from '../../errors.js';
import type { EgressPolicy } from '../../net/egress.js';

export interface RefreshGrant {
  tokenUrl: string;
  clientId: string;
  clientSecret: string | null;
  refreshToken: string;
  scope: string | null;
}

export interface IssuedAccessToken {
  accessToken: string;
  /** When it stops working, by the provider's `expires_in` (ms since the epoch). */
  expiresAtMs: number;
  /** Present when the provider rotated the refresh token: the old one no longer works. */
  refreshToken: string | null;
}

/** The provider refused the grant itself (RFC 6749 §5.2 `invalid_grant`, or the client): renewing again will not help. */
export class GrantRefused extends GatewayError {
  constructor(
    readonly oauthError: string,
    detail: string,
  ) {
    super('UPSTREAM_AUTH_FAILED', detail);
  }
}

const MAX_ANSWER_BYTES = 64 * 1024;
/** Without `expires_in` (RFC 6749 §5.1 makes it RECOMMENDED only), a token is taken to last this long. */
const DEFAULT_LIFETIME_S = 3600;
/** RFC 6749 §5.2 errors that say the grant or the client will not work whatever is retried. */
const REFUSALS = new Set(['invalid_grant', 'invalid_client', 'unauthorized_client', 'invalid_scope', 'unsupported_grant_type']);

export async function refreshAccessToken(grant: RefreshGrant, options: { egress: EgressPolicy; timeoutMs: number; now?: () => number }): Promise<IssuedAccessToken> {
  const now = options.now ?? Date.now;
  let url: URL;
  try {
    url = new URL(grant.tokenUrl);
  } catch {
    throw new GatewayError('UPSTREAM_ERROR', 'The OAuth2 token URL is not a valid URL');
  }
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') throw new GatewayError('UPSTREAM_ERROR', 'The OAuth2 token URL is neither https: nor http:');
  const target = await options.egress.resolve(url.hostname);
  if (!secure && !target.admitted) {
    throw new GatewayError('HOST_NOT_ALLOWED', 'A token URL over plain http: is allowed only to hosts admitted by EGRESS_ALLOW; use https:');
  }
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: grant.refreshToken, client_id: grant.clientId });
  if (grant.clientSecret !== null) form.set('client_secret', grant.clientSecret);
  if (grant.scope !== null) form.set('scope', grant.scope);
  const body = Buffer.from(form.toString());
  const startedMs = now();

  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      outcome();
    };
    const request = (secure ? https : http).request(
      {
        method: 'POST',
        host: target.address,
        family: target.family,
        port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
        path: `${url.pathname}${url.search}`,
        setHost: false,
        agent: false,
        headers: {
          host: url.host,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(body.length),
          accept: 'application/json',
          'user-agent': 'mailgw',
        },
        ...(secure ? { servername: target.servername } : {}),
      },
      (response) => {
        const chunks: Buffer[] = [];
        let read = 0;
        response.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) return settle(() => reject(new GatewayError('UPSTREAM_ERROR', 'The OAuth2 token endpoint answered more than 64 KiB')));
          chunks.push(chunk);
        });
        response.on('end', () => settle(() => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })));
        response.on('error', () => settle(() => reject(new GatewayError('UPSTREAM_ERROR', 'The connection to the OAuth2 token endpoint broke'))));
      },
    );
    const timer = setTimeout(
      () => settle(() => reject(new GatewayError('UPSTREAM_TIMEOUT', `The OAuth2 token endpoint did not answer within ${options.timeoutMs} ms`))),
      options.timeoutMs,
    );
    request.on('error', (err: NodeJS.ErrnoException) =>
      settle(() => reject(new GatewayError('UPSTREAM_ERROR', `Could not reach the OAuth2 token endpoint (${err.code ?? 'connection failed'})`))),
    );
    request.end(body);
  });

  let parsed: Record<string, unknown> = {};
  try {
    const value: unknown = JSON.parse(answer.text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) parsed = value as Record<string, unknown>;
  } catch {
    // Not JSON: judged by the status below.
  }
  if (answer.status >= 200 && answer.status < 300) {
    const accessToken = parsed.access_token;
    if (typeof accessToken !== 'string' || accessToken === '') throw new GatewayError('UPSTREAM_ERROR', 'The OAuth2 token endpoint answered without an access_token');
    const expiresIn = typeof parsed.expires_in === 'number' ? parsed.expires_in : Number(parsed.expires_in ?? DEFAULT_LIFETIME_S);
    const lifetimeS = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DEFAULT_LIFETIME_S;
    const rotated = typeof parsed.refresh_token === 'string' && parsed.refresh_token !== '' && parsed.refresh_token !== grant.refreshToken ? parsed.refresh_token : null;
    // Counted from when the request was sent: the token may have been issued any time after.
    return { accessToken, expiresAtMs: startedMs + lifetimeS * 1000, refreshToken: rotated };
  }
  const error = typeof parsed.error === 'string' ? parsed.error : null;
  if (error !== null && REFUSALS.has(error)) {
    const why = error === 'invalid_grant' ? 'refused the refresh token (invalid_grant: expired or revoked)' : `refused the client (${error})`;
    throw new GrantRefused(error, `The OAuth2 provider ${why}; give the account a new refresh token with PATCH`);
  }
  throw new GatewayError('UPSTREAM_ERROR', `The OAuth2 token endpoint answered HTTP ${answer.status}${error === null ? '' : ` (${error.slice(0, 64)})`}`);
}
