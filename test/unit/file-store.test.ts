import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileAccountStore } from '../../src/accounts/file-store.js';
import type { AccountRecord } from '../../src/accounts/types.js';
import { accountRecord } from '../support/account-records.js';
import { rejection } from '../support/assertions.js';
import { GatewayError } from '../../src/errors.js';

const record = accountRecord;

describe('FileAccountStore', () => {
  let root: string;
  let dataDir: string;
  let file: string;

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'mailgw-accounts-'));
    dataDir = path.join(root, 'data');
    file = path.join(dataDir, 'accounts.json');
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('opens on a missing directory without creating anything, then creates it 0700 / 0600 on first write', async () => {
    const store = await FileAccountStore.open(dataDir);
    expect(await store.list()).toEqual([]);
    expect(await store.get('alice')).toBeNull();
    await expect(fs.stat(dataDir)).rejects.toMatchObject({ code: 'ENOENT' });

    await store.create(record('alice'));
    expect((await fs.stat(dataDir)).mode & 0o777).toBe(0o700);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    await store.close();
  });

  it('keeps every one of many concurrent creates, in memory and on disk', async () => {
    const store = await FileAccountStore.open(dataDir);
    const ids = Array.from({ length: 50 }, (_, i) => `user-${String(i).padStart(2, '0')}`);
    await Promise.all(ids.map((id) => store.create(record(id))));
    expect((await store.list()).map((r) => r.id)).toEqual(ids);

    const reopened = await FileAccountStore.open(dataDir);
    expect((await reopened.list()).map((r) => r.id)).toEqual(ids);
    // No temp files left behind.
    expect(await fs.readdir(dataDir)).toEqual(['accounts.json']);
  });

  it('refuses a taken id with ACCOUNT_EXISTS, also when both creates race, and keeps the first', async () => {
    const store = await FileAccountStore.open(dataDir);
    const results = await Promise.allSettled([
      store.create(record('bob', { name: 'first' })),
      store.create(record('bob', { name: 'second' })),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    const err = (results[1] as PromiseRejectedResult).reason as GatewayError;
    expect(err).toBeInstanceOf(GatewayError);
    expect(err.code).toBe('ACCOUNT_EXISTS');
    expect(err.status).toBe(409);
    expect((await store.get('bob'))?.name).toBe('first');

    expect((await rejection(store.create(record('bob')))).code).toBe('ACCOUNT_EXISTS');
    expect((await (await FileAccountStore.open(dataDir)).get('bob'))?.name).toBe('first');
  });

  it('updates an existing record and refuses a missing one with ACCOUNT_NOT_FOUND', async () => {
    const store = await FileAccountStore.open(dataDir);
    await store.create(record('carol'));
    await store.update(record('carol', { port: 143, security: 'starttls', updatedAt: '2024-06-01T00:00:00.000Z' }));
    expect(await store.get('carol')).toMatchObject({ port: 143, security: 'starttls' });

    const err = await rejection(store.update(record('dave')));
    expect(err.code).toBe('ACCOUNT_NOT_FOUND');
    expect(await store.get('dave')).toBeNull();
    expect((await (await FileAccountStore.open(dataDir)).get('carol'))?.port).toBe(143);
  });

  it('updateIf writes only over the record it was given: a change made meanwhile is kept, a deleted one stays gone', async () => {
    const store = await FileAccountStore.open(dataDir);
    await store.create(record('cas'));
    const read = (await store.get('cas'))!;
    expect(await store.updateIf(read, { ...read, name: 'rotated' })).toBe(true);
    expect((await (await FileAccountStore.open(dataDir)).get('cas'))?.name).toBe('rotated');
    await store.update({ ...read, host: 'client.example.org' });
    expect(await store.updateIf(read, { ...read, name: 'stale' })).toBe(false);
    expect(await store.get('cas')).toMatchObject({ host: 'client.example.org', name: read.name });
    await store.delete('cas');
    expect(await store.updateIf(read, read)).toBe(false);
    expect(await store.get('cas')).toBeNull();
  });

  it('deletes, reporting whether there was something to delete, durably', async () => {
    const store = await FileAccountStore.open(dataDir);
    await store.create(record('erin'));
    await store.create(record('frank'));
    expect(await store.delete('erin')).toBe(true);
    expect(await store.delete('erin')).toBe(false);
    expect((await (await FileAccountStore.open(dataDir)).list()).map((r) => r.id)).toEqual(['frank']);
  });

  it('reads back exactly what was written after a reopen, sorted by id', async () => {
    const store = await FileAccountStore.open(dataDir);
    const zed = record('zed', { protocol: 'pop3', port: 995, authMethod: 'accessToken', name: 'Zed', tlsVerify: false });
    const amy = record('Amy');
    const proto = record('__proto__'); // a legal id that must survive the JSON round trip
    await store.create(zed);
    await store.create(proto);
    await store.create(amy);
    await store.close();

    const reopened = await FileAccountStore.open(dataDir);
    expect(await reopened.list()).toEqual([amy, proto, zed]); // code-unit order: 'A' < '_' < 'z'
    expect(await reopened.get('zed')).toEqual(zed);
  });

  it('hands out copies: mutating a returned or given record does not change the store', async () => {
    const store = await FileAccountStore.open(dataDir);
    const given = record('gina');
    await store.create(given);
    given.host = 'evil.example';
    const got = await store.get('gina');
    got!.port = 1;
    expect(await store.get('gina')).toMatchObject({ host: 'imap.example.com', port: 993 });
  });

  it('every rewrite leaves a complete, valid JSON file (temp file + rename)', async () => {
    const store = await FileAccountStore.open(dataDir);
    await store.create(record('seed'));
    // Read the file continuously while writes happen: it must always parse and never lose "seed".
    let writing = true;
    let reads = 0;
    const reader = (async () => {
      while (writing) {
        const text = await fs.readFile(file, 'utf8');
        const parsed = JSON.parse(text) as { version: number; accounts: AccountRecord[] };
        expect(parsed.version).toBe(1);
        expect(parsed.accounts.some((r) => r.id === 'seed')).toBe(true);
        reads++;
      }
    })();
    for (let i = 0; i < 40; i++) {
      await store.create(record(`w${i}`, { name: 'x'.repeat(2000) }));
    }
    writing = false;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect(JSON.parse(await fs.readFile(file, 'utf8')).accounts).toHaveLength(41);
  });

  it('a failed write changes nothing, in memory or on disk, and later writes work again', async () => {
    const store = await FileAccountStore.open(dataDir);
    await store.create(record('kept'));
    // Put a plain file where the data directory was: the next write cannot create its temp file
    // (this works for root too, unlike permission bits).
    const moved = path.join(root, 'moved');
    await fs.rename(dataDir, moved);
    await fs.writeFile(dataDir, 'not a directory');
    const err = await rejection(store.create(record('lost')));
    expect(err.code).toBe('SERVICE_UNAVAILABLE');
    expect(await store.get('lost')).toBeNull();
    expect((await rejection(store.delete('kept'))).code).toBe('SERVICE_UNAVAILABLE');
    expect(await store.get('kept')).not.toBeNull();
    await fs.rm(dataDir);
    await fs.rename(moved, dataDir);

    expect((await (await FileAccountStore.open(dataDir)).list()).map((r) => r.id)).toEqual(['kept']);
    await store.create(record('later'));
    expect((await (await FileAccountStore.open(dataDir)).list()).map((r) => r.id)).toEqual(['kept', 'later']);
  });

  it('removes at open the temp files a write interrupted by a crash left, and nothing else', async () => {
    const first = await FileAccountStore.open(dataDir);
    await first.create(record('alice'));
    await first.close();
    // What a crash between writing the temp file and the rename leaves: a full copy of the accounts.
    const orphans = [`.accounts.json.4242.${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}.tmp`, '.accounts.json.1.3f2b8c1e-5d4a-4b8e-9c7f-2a1d6e8b9c0d.tmp'];
    for (const name of orphans) await fs.writeFile(path.join(dataDir, name), await fs.readFile(file));
    const kept = ['secret.key', 'notes.tmp', '.accounts.json.bak'];
    for (const name of kept) await fs.writeFile(path.join(dataDir, name), 'keep');

    const store = await FileAccountStore.open(dataDir);
    expect((await store.list()).map((r) => r.id)).toEqual(['alice']);
    expect((await fs.readdir(dataDir)).sort()).toEqual(['accounts.json', ...kept].sort());
    await store.close();
  });

  it('refuses to open a corrupt file, naming it, and leaves it untouched', async () => {
    await fs.mkdir(dataDir, { recursive: true });
    const garbage = '{"version":1,"accounts":[{"id":"alice", "sealedSecret":"v1.x.y.z"';
    await fs.writeFile(file, garbage);
    const open = FileAccountStore.open(dataDir);
    await expect(open).rejects.toThrow(/accounts\.json is not valid JSON/);
    await expect(open).rejects.toThrow(file);
    // The message does not quote the file's content (it holds sealed secrets).
    await expect(open).rejects.not.toThrow(/v1\.x\.y\.z/);
    expect(await fs.readFile(file, 'utf8')).toBe(garbage);
  });

  it('refuses to open a file whose records are malformed', async () => {
    await fs.mkdir(dataDir, { recursive: true });
    const bad = { version: 1, accounts: [record('ok'), { ...record('broken'), port: 'imap' }] };
    await fs.writeFile(file, JSON.stringify(bad));
    await expect(FileAccountStore.open(dataDir)).rejects.toThrow(/accounts\.json is corrupt: record #1: field "port"/);

    await fs.writeFile(file, JSON.stringify({ version: 1, accounts: [record('twice'), record('twice')] }));
    await expect(FileAccountStore.open(dataDir)).rejects.toThrow(/duplicate id "twice"/);

    await fs.writeFile(file, '[]');
    await expect(FileAccountStore.open(dataDir)).rejects.toThrow(/accounts\.json is corrupt/);
  });

  it('refuses writes after close, having finished the pending ones', async () => {
    const store = await FileAccountStore.open(dataDir);
    const pending = store.create(record('last'));
    await store.close();
    await pending;
    await expect(store.create(record('too-late'))).rejects.toThrow(/closed/);
    expect((await (await FileAccountStore.open(dataDir)).list()).map((r) => r.id)).toEqual(['last']);
  });
});
