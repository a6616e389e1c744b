/** Small file-system helpers shared by the stores that write files atomically. */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** fsync a directory so a rename or link in it survives a crash; some platforms refuse, that is fine. */
export async function syncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Not supported on every platform/filesystem (e.g. Windows); the data itself is already fsynced.
  } finally {
    await handle?.close();
  }
}

/** The `code` of a Node system error (`ENOENT`, `EEXIST`, …), if it has one. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}
/** Temp file in the same directory (rename is atomic only within one filesystem), fsync, rename. */
export async function writeFileAtomic(dir: string, file: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomUUID()}.tmp`);
  try {
    const handle = await fs.open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

/**
 * Removes the temp files `writeFileAtomic` leaves behind for `file` when the process died between
 * writing and renaming (`.<name>.<pid>.<uuid>.tmp`), and only those. Called when a store opens.
 */
export async function removeOrphanTempFiles(dir: string, file: string): Promise<void> {
  const name = path.basename(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const temp = new RegExp(`^\\.${name}\\.\\d+\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\.tmp$`);
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  await Promise.all(entries.filter((entry) => temp.test(entry)).map((entry) => fs.rm(path.join(dir, entry), { force: true })));
}
