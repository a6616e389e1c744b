/** Who is calling: an admin key, an access token, or nobody known (no header, or a refused one). */
import type { TokenRecord } from './tokens.js';

export type Principal =
  | { kind: 'admin'; keyDigest: string }
  | { kind: 'token'; token: TokenRecord }
  | { kind: 'anonymous'; refused?: string };

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the access hook (tenants/access.ts) before any handler runs. */
    principal: Principal;
  }
}

/** Whether this caller may see this account at all (an account it may not see does not exist for it). */
export function canSeeAccount(principal: Principal, accountId: string): boolean {
  if (principal.kind === 'admin') return true;
  if (principal.kind === 'token') return principal.token.accounts.includes('*') || principal.token.accounts.includes(accountId);
  return false;
}
