/**
 * An OAuth2 provider of the test's own, on a free loopback port: the token endpoint of RFC 6749's
 * refresh grant (§6) and the introspection endpoint of RFC 7662 that Dovecot's `passdb { driver =
 * oauth2 }` asks at every login (the facts it relies on are in the comments below).
 *
 * It issues short-lived access tokens from the refresh tokens it was given, can rotate a refresh
 * token (the old one is then `invalid_grant`), refuse a grant, answer slowly or not at all, and counts
 * what it was asked, so a test can tell how many renewals a scenario caused.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProviderGrant {
  /** The mailbox user the tokens of this grant log in as. */
  username: string;
  clientId: string;
  clientSecret?: string;
  scope?: string;
}

export interface TokenRequest {
  grantType: string | null;
  refreshToken: string | null;
  clientId: string | null;
  clientSecret: string | null;
  scope: string | null;
  atMs: number;
}

export interface OAuth2Provider {
  /** `http://127.0.0.1:<port>` */
  url: string;
  tokenUrl: string;
  /** What Dovecot's `introspection_url` is set to (credentials in the URL, as Dovecot sends them). */
  introspectionUrl: string;
  /** Registers a refresh token for `grant`; answers it. */
  grant(grant: ProviderGrant): string;
  /** Access tokens issued from now on live this long (default 3600 s). */
  setExpiresIn(seconds: number): void;
  /** From now on every refresh rotates the refresh token (the old one becomes invalid). */
  setRotation(rotate: boolean): void;
  /** The refresh token is refused from now on (`invalid_grant`), as when a user revokes the app. */
  revoke(refreshToken: string): void;
  /** Token requests wait this long before they are answered (a slow or hung endpoint); 0: at once. */
  setTokenDelay(ms: number): void;
  /** Makes an access token inactive for introspection (revoked or expired at the provider's side). */
  expireAccessToken(accessToken: string): void;
  /** The access tokens issued so far for `username`'s grants. */
  issuedTo(username: string): string[];
  /** The refresh token currently valid for a grant first registered as `refreshToken`. */
  currentRefreshToken(refreshToken: string): string;
  tokenRequests: TokenRequest[];
  introspections: number;
  stop(): Promise<void>;
}

interface IssuedToken {
  username: string;
  expiresAtMs: number;
  active: boolean;
}

const INTROSPECTION_USER = 'dovecot';

async function readForm(request: http.IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function json(response: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

export async function startOAuth2Provider(): Promise<OAuth2Provider> {
  const introspectionSecret = randomBytes(12).toString('hex');
  /** Refresh token → its grant; the first token of a grant → the one valid now (after rotations). */
  const grants = new Map<string, ProviderGrant>();
  const rotatedFrom = new Map<string, string>();
  const issued = new Map<string, IssuedToken>();
  let expiresIn = 3600;
  let rotate = false;
  let tokenDelayMs = 0;
  const requests: TokenRequest[] = [];
  let introspections = 0;

  const server = http.createServer((request, response) => {
    void (async () => {
      const path = new URL(request.url ?? '/', 'http://localhost').pathname;
      if (request.method === 'POST' && path === '/token') {
        const form = await readForm(request);
        const asked: TokenRequest = {
          grantType: form.get('grant_type'),
          refreshToken: form.get('refresh_token'),
          clientId: form.get('client_id'),
          clientSecret: form.get('client_secret'),
          scope: form.get('scope'),
          atMs: Date.now(),
        };
        requests.push(asked);
        if (tokenDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, tokenDelayMs));
        if (response.destroyed) return;
        if (asked.grantType !== 'refresh_token') return json(response, 400, { error: 'unsupported_grant_type' });
        const grant = asked.refreshToken === null ? undefined : grants.get(asked.refreshToken);
        if (grant === undefined) return json(response, 400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
        // RFC 6749 §2.3.1: a confidential client authenticates (here in the body).
        if (asked.clientId !== grant.clientId || (grant.clientSecret !== undefined && asked.clientSecret !== grant.clientSecret)) {
          return json(response, 401, { error: 'invalid_client' });
        }
        const accessToken = `at_${randomBytes(18).toString('base64url')}`;
        issued.set(accessToken, { username: grant.username, expiresAtMs: Date.now() + expiresIn * 1000, active: true });
        const body: Record<string, unknown> = { access_token: accessToken, token_type: 'Bearer', expires_in: expiresIn, scope: grant.scope ?? 'mail' };
        if (rotate) {
          const next = `rt_${randomBytes(18).toString('base64url')}`;
          grants.delete(asked.refreshToken!);
          grants.set(next, grant);
          for (const [first, current] of rotatedFrom) if (current === asked.refreshToken) rotatedFrom.set(first, next);
          body.refresh_token = next;
        }
        return json(response, 200, body);
      }
      if (request.method === 'POST' && path === '/introspect') {
        introspections += 1;
        const expected = `Basic ${Buffer.from(`${INTROSPECTION_USER}:${introspectionSecret}`).toString('base64')}`;
        if (request.headers.authorization !== expected) return json(response, 401, { error: 'invalid_client' });
        const form = await readForm(request);
        const token = issued.get(form.get('token') ?? '');
        if (token === undefined || !token.active || token.expiresAtMs <= Date.now()) return json(response, 200, { active: false });
        return json(response, 200, { active: true, username: token.username, exp: Math.floor(token.expiresAtMs / 1000) });
      }
      json(response, 404, { error: 'not_found' });
    })().catch(() => response.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    tokenUrl: `${url}/token`,
    introspectionUrl: `http://${INTROSPECTION_USER}:${introspectionSecret}@127.0.0.1:${port}/introspect`,
    grant(grant) {
      const refreshToken = `rt_${randomBytes(18).toString('base64url')}`;
      grants.set(refreshToken, grant);
      rotatedFrom.set(refreshToken, refreshToken);
      return refreshToken;
    },
    setExpiresIn: (seconds) => void (expiresIn = seconds),
    setRotation: (value) => void (rotate = value),
    revoke(refreshToken) {
      grants.delete(rotatedFrom.get(refreshToken) ?? refreshToken);
    },
    setTokenDelay: (ms) => void (tokenDelayMs = ms),
    expireAccessToken(accessToken) {
      const token = issued.get(accessToken);
      if (token) token.active = false;
    },
    issuedTo: (username) => [...issued].filter(([, token]) => token.username === username).map(([accessToken]) => accessToken),
    currentRefreshToken: (refreshToken) => rotatedFrom.get(refreshToken) ?? refreshToken,
    tokenRequests: requests,
    get introspections() {
      return introspections;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
