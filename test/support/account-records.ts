/** A stored account record as the stores keep it, for store tests (the secret is a dummy sealed value). */
import type { AccountRecord } from '../../src/accounts/types.js';

export function accountRecord(id: string, overrides: Partial<AccountRecord> = {}): AccountRecord {
  return {
    id,
    protocol: 'imap',
    host: 'imap.example.com',
    port: 993,
    security: 'tls',
    username: `${id}@example.com`,
    authMethod: 'password',
    sealedSecret: 'v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.AAAA',
    tlsVerify: true,
    name: null,
    createdAt: '2024-05-01T10:00:00.000Z',
    updatedAt: '2024-05-01T10:00:00.000Z',
    ...overrides,
  };
}
