import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSealer, loadOrCreateFileSecretKey, parseSecretKey } from '../../src/accounts/sealing.js';

describe('createSealer', () => {
  const key = randomBytes(32);
  const sealer = createSealer(key);

  it('round-trips secrets, including empty and non-ASCII ones', () => {
    for (const secret of ['hunter2', '', 'pässwörd ✉ 密码', 'x'.repeat(5000)]) {
      expect(sealer.open(sealer.seal(secret))).toBe(secret);
    }
  });

  it('produces v1.<iv>.<tag>.<ciphertext> in base64url, without the plain text', () => {
    const sealed = sealer.seal('correct horse battery staple');
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain('horse');
  });

  it('uses a fresh IV each time, so equal secrets do not give equal sealed values', () => {
    expect(sealer.seal('same')).not.toBe(sealer.seal('same'));
  });

  it('names equal secrets alike and different ones apart, by a keyed fingerprint that is not a plain hash', () => {
    const name = sealer.fingerprint('refresh-token-1');
    expect(name).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(sealer.fingerprint('refresh-token-1')).toBe(name);
    expect(sealer.fingerprint('refresh-token-2')).not.toBe(name);
    // Under another key the same secret gets another name: it cannot be checked against guesses without the key.
    expect(createSealer(randomBytes(32)).fingerprint('refresh-token-1')).not.toBe(name);
    expect(name).not.toBe(createHash('sha256').update('refresh-token-1').digest().subarray(0, 16).toString('base64url'));
  });

  it('refuses a tampered ciphertext, tag or IV', () => {
    const sealed = sealer.seal('secret-token');
    const [v, iv = '', tag = '', ct = ''] = sealed.split('.');
    const flip = (b64: string): string => {
      const bytes = Buffer.from(b64, 'base64url');
      bytes[0] = (bytes[0] ?? 0) ^ 0x01;
      return bytes.toString('base64url');
    };
    expect(() => sealer.open([v, iv, tag, flip(ct)].join('.'))).toThrow(/altered or sealed under another key/);
    expect(() => sealer.open([v, iv, flip(tag), ct].join('.'))).toThrow(/altered or sealed under another key/);
    expect(() => sealer.open([v, flip(iv), tag, ct].join('.'))).toThrow(/altered or sealed under another key/);
  });

  it('refuses a value sealed under another key', () => {
    const other = createSealer(randomBytes(32));
    expect(() => sealer.open(other.seal('secret'))).toThrow(/altered or sealed under another key/);
  });

  it('refuses malformed values with a message that does not repeat them', () => {
    for (const bad of ['', 'plain-password', 'v2.a.b.c', 'v1.only.three', 'v1.!!!.b.c', 'v1.AAAA.AAAA.AAAA']) {
      let message = '';
      try {
        sealer.open(bad);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/malformed/);
      if (bad.length > 4) expect(message).not.toContain(bad);
    }
  });

  it('refuses keys that are not 32 bytes', () => {
    expect(() => createSealer(randomBytes(16))).toThrow(/32 bytes/);
  });

  it('keeps its own copy of the key', () => {
    const k = randomBytes(32);
    const s = createSealer(k);
    const sealed = s.seal('secret');
    k.fill(0);
    expect(s.open(sealed)).toBe('secret');
  });
});

describe('parseSecretKey', () => {
  const bytes = randomBytes(32);

  it('accepts 64 hex characters, either case, with surrounding whitespace', () => {
    expect(parseSecretKey(bytes.toString('hex'))).toEqual(bytes);
    expect(parseSecretKey(` ${bytes.toString('hex').toUpperCase()}\n`)).toEqual(bytes);
  });

  it('accepts base64 and base64url, padded or not', () => {
    expect(parseSecretKey(bytes.toString('base64'))).toEqual(bytes);
    expect(parseSecretKey(bytes.toString('base64').replace(/=+$/, ''))).toEqual(bytes);
    expect(parseSecretKey(bytes.toString('base64url'))).toEqual(bytes);
  });

  it('refuses wrong lengths and junk without echoing the value', () => {
    const bad = [
      randomBytes(31).toString('hex'),
      `${bytes.toString('hex')}00`,
      randomBytes(16).toString('base64'),
      randomBytes(48).toString('base64'),
      `${bytes.toString('base64url').slice(0, 20)}$${bytes.toString('base64url').slice(21)}`,
      'correct horse battery staple and more words to be long enough',
      '',
    ];
    for (const value of bad) {
      let message = '';
      expect(() => {
        try {
          parseSecretKey(value);
        } catch (err) {
          message = (err as Error).message;
          throw err;
        }
      }).toThrow(/64 hex characters or the base64\/base64url encoding of exactly 32 bytes/);
      if (value !== '') expect(message).not.toContain(value.slice(0, 12));
    }
  });

  it('refuses a base64 text with a stray character inside (Node would silently skip it)', () => {
    const text = bytes.toString('base64');
    expect(() => parseSecretKey(`${text.slice(0, 10)}.${text.slice(10)}`)).toThrow();
  });
});

describe('loadOrCreateFileSecretKey', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mailgw-key-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('creates a 32-byte key as hex with mode 0600 and reads the same key back', async () => {
    const dataDir = path.join(dir, 'data');
    const key = await loadOrCreateFileSecretKey(dataDir);
    expect(key.length).toBe(32);
    const file = path.join(dataDir, 'secret.key');
    const stat = await fs.stat(file);
    expect(stat.mode & 0o777).toBe(0o600);
    expect((await fs.stat(dataDir)).mode & 0o777).toBe(0o700);
    expect((await fs.readFile(file, 'utf8')).trim()).toBe(key.toString('hex'));
    expect(await loadOrCreateFileSecretKey(dataDir)).toEqual(key);
  });

  it('gives every concurrent starter the same key and leaves no temp files', async () => {
    const keys = await Promise.all(Array.from({ length: 20 }, () => loadOrCreateFileSecretKey(dir)));
    const first = keys[0]!;
    for (const k of keys) expect(k).toEqual(first);
    expect(await fs.readdir(dir)).toEqual(['secret.key']);
    expect(parseSecretKey(await fs.readFile(path.join(dir, 'secret.key'), 'utf8'))).toEqual(first);
  });

  it('uses an existing key file given as base64', async () => {
    const key = randomBytes(32);
    await fs.writeFile(path.join(dir, 'secret.key'), `${key.toString('base64')}\n`, { mode: 0o600 });
    expect(await loadOrCreateFileSecretKey(dir)).toEqual(key);
  });

  it('refuses (and keeps) a damaged key file instead of replacing it', async () => {
    const file = path.join(dir, 'secret.key');
    await fs.writeFile(file, 'abc123', { mode: 0o600 });
    await expect(loadOrCreateFileSecretKey(dir)).rejects.toThrow(/secret\.key does not hold a valid key/);
    expect(await fs.readFile(file, 'utf8')).toBe('abc123');
  });
});
