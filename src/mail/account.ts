/**
 * What a backend needs to reach one mailbox: the account's connection fields with its secret
 * unsealed. Lives only in memory, only as long as a connect needs it; never logged.
 */
import type { Protocol, Security } from '../accounts/types.js';

export interface MailAccount {
  id: string;
  protocol: Protocol;
  host: string;
  port: number;
  security: Security;
  username: string;
  credentials: MailCredentials;
  tlsVerify: boolean;
}

/** A password, a fixed access token, or an OAuth2 grant that gives a token for each login. */
export type MailCredentials = { password: string } | { accessToken: string } | { oauth2: OAuth2Login };

/** How an OAuth2 account logs in (src/accounts/oauth2/): a fresh token for each login. */
export interface OAuth2Login {
  /** Names the grant (not its tokens): the same grant is the same login for pooled connections. */
  grantId: string;
  /**
   * A token to log in with; `refused`: the one a server just refused, so that another is answered
   * (renewed). Answers `refused` itself when renewing would not help (it was got after a refusal
   * already): the caller gives up with the server's refusal.
   */
  token(refused?: string): Promise<string>;
  /**
   * POP3: send the token with `AUTH XOAUTH2` (RFC 5034's initial response), or on the line after the
   * server's `+` (what Outlook requires).
   */
  initialResponse: boolean;
}

/** Looks an account up and unseals its secret, at connect time, so PATCHed credentials take effect. */
export type MailAccountResolver = (accountId: string) => Promise<MailAccount>;
