/**
 * The directory name of an account under `DATA_DIR/events/`. Account ids are checked by the routes
 * ([A-Za-z0-9._-]{1,64}), but this layer does not rely on it: any string maps to a name that is safe on
 * every common filesystem.
 *
 * Lower-case letters, digits, `_` and `-` stand for themselves; every other byte of the UTF-8 form is
 * `%XX`. So upper case is escaped too (`Alice` → `%41lice`): on a case-insensitive filesystem (macOS,
 * Windows) `Alice` and `alice` stay two directories. `.` is escaped, so no name is `.` or `..` or hidden,
 * and `/`, `\`, `:` and NUL never reach the filesystem. The mapping is one-to-one; a name that would
 * be longer than 200 bytes (filesystems allow 255) becomes `~` and the SHA-256 of the id instead.
 */
import { createHash } from 'node:crypto';

const MAX_NAME_BYTES = 200;

export function accountDirName(accountId: string): string {
  if (accountId === '') throw new Error('an account id may not be empty');
  let name = '';
  for (const byte of Buffer.from(accountId, 'utf8')) {
    const plain = (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x5f || byte === 0x2d;
    name += plain ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  // `~` is outside the plain set and never starts an escaped name, so hashed names cannot collide with those.
  return name.length <= MAX_NAME_BYTES ? name : `~${createHash('sha256').update(accountId, 'utf8').digest('hex')}`;
}
