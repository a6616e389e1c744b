/**
 * Sealing of stored secrets (mail passwords, OAuth2 access tokens) with AES-256-GCM.
 *
 * Format: `v1.<base64url iv (12 bytes)>.<base64url tag (16 bytes)>.<base64url ciphertext>`.
 * A fresh random 96-bit IV per seal (NIST SP 800-38D §8.2.2: random IVs are safe far beyond the number
 * of accounts a gateway holds). The version prefix lets a later format or key rotation coexist.
 *
 * No message produced here ever contains a secret, a key or a sealed value.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode, syncDir } from '../util/fs.js';

const VERSION = 'v1';
const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export const SECRET_KEY_FILE = 'secret.key';

export interface Sealer {
  seal(plain: string): string;
  /** Throws when the value is malformed, was tampered with, or was sealed under another key. */
  open(sealed: string): string;
  /**
   * A name for a secret that tells nothing about it: HMAC-SHA256 under a key derived from the sealing
   * key (never the sealing key itself), 128 bits, base64url. Equal secrets get equal names.
   */
  fingerprint(plain: string): string;
}

export function createSealer(key: Buffer): Sealer {
  if (key.length !== KEY_BYTES) {
    throw new Error(`secret sealing key must be exactly ${KEY_BYTES} bytes`);
  }
  // Own copy: a caller zeroing or reusing its buffer must not change the key under us.
  const k = Buffer.from(key);
  // A key of its own for fingerprints (one key, one purpose): HMAC of a fixed label under the sealing key.
  const fingerprintKey = createHmac('sha256', k).update('mailgw fingerprint v1').digest();

  return {
    seal(plain: string): string {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv(ALGORITHM, k, iv, { authTagLength: TAG_BYTES });
      const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();
      return [VERSION, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
    },

    open(sealed: string): string {
      const parts = sealed.split('.');
      if (parts.length !== 4 || parts[0] !== VERSION) {
        throw new Error(`sealed secret is malformed (expected ${VERSION}.<iv>.<tag>.<ciphertext>)`);
      }
      const [, ivText = '', tagText = '', ctText = ''] = parts;
      if (!BASE64URL.test(ivText) || !BASE64URL.test(tagText) || !BASE64URL.test(ctText)) {
        throw new Error('sealed secret is malformed (not base64url)');
      }
      const iv = Buffer.from(ivText, 'base64url');
      const tag = Buffer.from(tagText, 'base64url');
      const ciphertext = Buffer.from(ctText, 'base64url');
      if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
        throw new Error('sealed secret is malformed (wrong IV or tag length)');
      }
      try {
        const decipher = createDecipheriv(ALGORITHM, k, iv, { authTagLength: TAG_BYTES });
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
      } catch {
        // GCM tag mismatch: the value was altered, or sealed under a different SECRET_KEY.
        throw new Error('sealed secret failed authentication: it was altered or sealed under another key');
      }
    },

    fingerprint(plain: string): string {
      return createHmac('sha256', fingerprintKey).update(plain, 'utf8').digest().subarray(0, 16).toString('base64url');
    },
  };
}

const KEY_FORMAT_HELP = 'must be 64 hex characters or the base64/base64url encoding of exactly 32 bytes';

/**
 * Parses a 256-bit key given as 64 hex characters or as base64 / base64url (padding optional).
 * Surrounding whitespace (a trailing newline from a file or a shell) is ignored.
 * The error message never repeats the value.
 */
export function parseSecretKey(value: string): Buffer {
  const text = value.trim();
  // Hex first: 64 hex characters are also valid base64 (of 48 bytes), and hex is what we generate.
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');

  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const bytes = Buffer.from(text, 'base64');
    // Node's decoder is lenient (it skips junk and accepts either alphabet); insist that the text is
    // exactly the canonical encoding of the bytes, so a truncated or mistyped key is refused.
    const canonical = bytes.toString('base64url');
    const given = text.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
    if (bytes.length === KEY_BYTES && canonical === given) return bytes;
  }
  throw new Error(`secret key ${KEY_FORMAT_HELP}`);
}

/**
 * Reads `<dataDir>/secret.key`, or creates it with 32 random bytes (hex, mode 0600) on first start.
 *
 * Creation is atomic across processes: the key is written and fsynced to a uniquely named temporary
 * file, then hard-linked to `secret.key`; link(2) never replaces an existing file, so when two processes
 * start at once exactly one key wins and the loser reads the winner's. No reader can ever see a
 * half-written key. An existing but unreadable key is an error, never silently replaced: every sealed
 * secret depends on it.
 */
export async function loadOrCreateFileSecretKey(dataDir: string): Promise<Buffer> {
  const file = path.join(dataDir, SECRET_KEY_FILE);
  const existing = await readKeyFile(file);
  if (existing) return existing;

  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dataDir, `.${SECRET_KEY_FILE}.${process.pid}.${randomUUID()}.tmp`);
  const key = randomBytes(KEY_BYTES);
  try {
    const handle = await fs.open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(`${key.toString('hex')}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.link(tmp, file);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw new Error(`could not create ${file}: ${errnoCode(err) ?? String(err)}`, { cause: err });
      }
      // Another process created it first: use theirs.
      const theirs = await readKeyFile(file);
      if (!theirs) throw new Error(`${file} vanished while being created`);
      return theirs;
    }
    await syncDir(dataDir);
    return key;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

async function readKeyFile(file: string): Promise<Buffer | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw new Error(`could not read ${file}: ${errnoCode(err) ?? String(err)}`, { cause: err });
  }
  try {
    return parseSecretKey(text);
  } catch {
    throw new Error(`${file} does not hold a valid key (it ${KEY_FORMAT_HELP}); ` +
      'restore it from a backup: secrets sealed under it cannot be opened without it');
  }
}
