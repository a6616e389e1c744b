/**
 * Login mechanisms and their wire forms. Pure helpers; the exchange itself is in client.ts.
 *
 * - A password logs in with SASL PLAIN (RFC 4616 through AUTH, RFC 5034) when CAPA lists it under
 *   `SASL`, else with USER/PASS (RFC 1939 §7), which every server has unless CAPA says otherwise.
 *   PLAIN first because it carries UTF-8 user names and passwords as they are.
 * - An access token logs in with XOAUTH2 (Google's and Microsoft's SASL mechanism) when CAPA lists
 *   it, else with OAUTHBEARER (RFC 7628), the standard form of the same.
 */
import { GatewayError } from '../../errors.js';

/**
 * `initialResponse` (access tokens): false sends the XOAUTH2 response on the line after the server's
 * `+` rather than on the AUTH line (RFC 5034 allows both; Outlook takes only the former).
 */
export type Pop3Credentials = { password: string } | { accessToken: string; initialResponse?: boolean };

export type LoginMechanism = 'PLAIN' | 'USER' | 'XOAUTH2' | 'OAUTHBEARER';

/**
 * RFC 2449 §4 and RFC 5034 §4: a command line is at most 255 octets; a longer AUTH initial response
 * is sent after an empty `+ ` challenge instead of on the AUTH line.
 */
export const MAX_COMMAND_OCTETS = 255;

/** Which mechanism to use for these credentials, given the server's CAPA (null: no CAPA answer). */
export function chooseMechanism(credentials: Pop3Credentials, caps: Map<string, string[]> | null): LoginMechanism {
  const sasl = new Set((caps?.get('SASL') ?? []).map((m) => m.toUpperCase()));
  if ('accessToken' in credentials) {
    if (sasl.has('XOAUTH2')) return 'XOAUTH2';
    if (sasl.has('OAUTHBEARER')) return 'OAUTHBEARER';
    throw new GatewayError(
      'UPSTREAM_AUTH_FAILED',
      'The mail server offers no login mechanism for an access token (it needs SASL XOAUTH2 or OAUTHBEARER in CAPA)',
    );
  }
  if (sasl.has('PLAIN')) return 'PLAIN';
  // Without CAPA (RFC 1939-only servers) USER is assumed; with CAPA it must be listed (RFC 2449 §6.8).
  if (caps === null || caps.has('USER')) return 'USER';
  throw new GatewayError('UPSTREAM_AUTH_FAILED', 'The mail server offers no password login (neither USER nor SASL PLAIN)');
}

/** RFC 4616: `authzid NUL authcid NUL passwd`, base64; the authorisation identity is left empty. */
export function plainResponse(username: string, password: string): string {
  return Buffer.from(`\0${username}\0${password}`, 'utf8').toString('base64');
}

/** XOAUTH2: `user=<user>^Aauth=Bearer <token>^A^A`, base64. */
export function xoauth2Response(username: string, accessToken: string): string {
  return Buffer.from(`user=${username}\x01auth=Bearer ${accessToken}\x01\x01`, 'utf8').toString('base64');
}

/**
 * RFC 7628 §3.1: the GS2 header `n,a=<user>,` (in the name `,` is `=2C` and `=` is `=3D`, RFC 5801
 * §4), then `^Aauth=Bearer <token>^A^A`, base64.
 */
export function oauthbearerResponse(username: string, accessToken: string): string {
  const saslname = username.replace(/=/g, '=3D').replace(/,/g, '=2C');
  return Buffer.from(`n,a=${saslname},\x01auth=Bearer ${accessToken}\x01\x01`, 'utf8').toString('base64');
}

/**
 * Refuses values that would end the command line early (CR, LF) or cut a SASL string (NUL): sent as
 * they are, they would let whoever stored them inject POP3 commands. Never echoes the value.
 */
export function assertSafeArgument(value: string, what: string): void {
  if (/[\r\n\0]/.test(value)) {
    throw new GatewayError('UPSTREAM_AUTH_FAILED', `The stored ${what} contains a line break or NUL and cannot be sent`);
  }
}
