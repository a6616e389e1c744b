/**
 * Access tokens without a server: the value shown once and stored as a hash, expiry, deletion, the
 * one-second freshness of a read record, and lastUsedAt written at most once a minute.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TokenService } from '../../src/tenants/token-service.js';
import { FileTokenStore, TOKENS_FILE } from '../../src/tenants/token-stores.js';
import { hashToken } from '../../src/tenants/tokens.js';

describe('TokenService over the file store', () => {
  let dir: string;
  let clock: number;
  let store: FileTokenStore;
  let service: TokenService;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-tokens-'));
    clock = Date.parse('2026-12-01T10:00:00Z');
    store = await FileTokenStore.open(dir);
    service = new TokenService(store, { now: () => clock });
  });
  // lastUsedAt is written in the background (token-service.ts): a write may still be landing as the test ends.
  afterEach(async () => rm(dir, { recursive: true, force: true, maxRetries: 5 }));

  it('shows the value once, recognisable and long, and stores only its hash', async () => {
    const created = await service.create({ accounts: ['alice'], scopes: ['read'], description: 'web app' });
    expect(created.token).toMatch(/^mgw_[A-Za-z0-9_-]{43}$/);
    expect(created.id).toMatch(/^tok_/);
    const file = await readFile(path.join(dir, TOKENS_FILE), 'utf8');
    expect(file).not.toContain(created.token);
    expect(file).not.toContain(created.token.slice(4));
    expect(file).toContain(hashToken(created.token));
    const listed = await service.list();
    expect(listed).toEqual([{ id: created.id, accounts: ['alice'], scopes: ['read'], description: 'web app', expiresAt: null, createdAt: '2026-12-01T10:00:00.000Z', lastUsedAt: null }]);
    expect(JSON.stringify(listed)).not.toContain(hashToken(created.token));
  });

  it('keeps tokens across a restart of the store', async () => {
    const created = await service.create({ accounts: ['*'], scopes: ['read', 'write'] });
    const reopened = new TokenService(await FileTokenStore.open(dir), { now: () => clock });
    expect(await reopened.authenticate(created.token)).toMatchObject({ token: { id: created.id, scopes: ['read', 'write'] } });
  });

  it('refuses an unknown value and a near miss alike, an expired token with its expiry, and a past expiresAt at creation', async () => {
    const created = await service.create({ accounts: ['alice'], scopes: ['read'], expiresAt: '2026-12-01T11:00:00Z' });
    const nearMiss = `${created.token.slice(0, -1)}${created.token.endsWith('A') ? 'B' : 'A'}`;
    const unknown = await service.authenticate(`mgw_${'x'.repeat(43)}`);
    expect(unknown).toEqual(await service.authenticate(nearMiss));
    expect(unknown).toEqual({ refused: 'Unknown or deleted access token' });
    expect(await service.authenticate(created.token)).toHaveProperty('token');
    clock = Date.parse('2026-12-01T11:00:00Z');
    expect(await service.authenticate(created.token)).toEqual({ refused: expect.stringMatching(/expired at 2026-12-01T11:00:00.000Z/) });
    await expect(service.create({ accounts: ['alice'], scopes: ['read'], expiresAt: '2026-12-01T10:59:59Z' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(service.create({ accounts: ['*', 'alice'], scopes: ['read'] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('refuses a deleted token at once here, and in another process within the freshness window', async () => {
    const created = await service.create({ accounts: ['alice'], scopes: ['read'] });
    const other = new TokenService(store, { now: () => clock, freshForMs: 1000 });
    expect(await other.authenticate(created.token)).toHaveProperty('token');
    await service.delete(created.id);
    expect(await service.authenticate(created.token)).toHaveProperty('refused');
    clock += 999;
    expect(await other.authenticate(created.token)).toHaveProperty('token'); // still within its 1 s
    clock += 1;
    expect(await other.authenticate(created.token)).toHaveProperty('refused');
    await expect(service.delete(created.id)).rejects.toMatchObject({ code: 'TOKEN_NOT_FOUND' });
  });

  it('records lastUsedAt, at most once a minute', async () => {
    const created = await service.create({ accounts: ['alice'], scopes: ['read'] });
    await service.authenticate(created.token);
    await store.close(); // the touch is written in the background
    expect((await service.get(created.id)).lastUsedAt).toBe('2026-12-01T10:00:00.000Z');
    clock += 30_000;
    await service.authenticate(created.token);
    await store.close();
    expect((await service.get(created.id)).lastUsedAt).toBe('2026-12-01T10:00:00.000Z');
    clock += 31_000;
    await service.authenticate(created.token);
    await store.close();
    expect((await service.get(created.id)).lastUsedAt).toBe('2026-12-01T10:01:01.000Z');
  });
});
