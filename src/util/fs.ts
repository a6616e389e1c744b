/** Small file-system helpers shared by the stores that write files atomically. */
import fs from 'node:fs/promises';

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
