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
  credentials: { password: string } | { accessToken: string };
  tlsVerify: boolean;
}

/** Looks an account up and unseals its secret, at connect time, so PATCHed credentials take effect. */
export type MailAccountResolver = (accountId: string) => Promise<MailAccount>;
