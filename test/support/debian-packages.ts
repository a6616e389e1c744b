/**
 * Debian packages unpacked, not installed: Cyrus and Courier conflict with Dovecot (installing one
 * removes the other), so the test setup fetches their .debs with `apt-get download` and unpacks them with
 * `dpkg -x` into a cache folder, once per machine. Nothing is installed (on a machine without package
 * lists, root runs `apt-get update` first).
 *
 * The cache is `$MAILGW_TEST_CACHE`, else `mailgw-test-packages` in the temp dir: not below a home
 * folder, since the servers' unprivileged processes (`nobody`) must reach their own binaries. A folder
 * is complete when its `.complete` marker exists (an interrupted unpack is started again).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sbinEnv } from './dovecot.js';

function cacheRoot(): string {
  return process.env.MAILGW_TEST_CACHE || path.join(os.tmpdir(), 'mailgw-test-packages');
}

/**
 * The cache folder, made if missing, refused unless it is a real folder of ours that nobody else can
 * write: root runs what is in it, and the temp dir is writable by everyone.
 */
async function ownCacheRoot(): Promise<string> {
  const root = cacheRoot();
  await mkdir(root, { recursive: true, mode: 0o755 });
  const info = await lstat(root);
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (!info.isDirectory() || info.uid !== uid || (info.mode & 0o022) !== 0) {
    throw new Error(`unpacked Debian packages: ${root} must be a folder owned by this user and writable by no one else; remove it or set MAILGW_TEST_CACHE`);
  }
  return root;
}

function run(command: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: sbinEnv(), maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

async function download(packages: string[], cwd: string): Promise<void> {
  try {
    await run('apt-get', ['download', ...packages], cwd);
  } catch (error) {
    // A fresh machine (or a container image) may have no package lists yet.
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    if (!isRoot || !/Unable to locate|has no installation candidate|Can't select/i.test((error as Error).message)) throw error;
    await run('apt-get', ['update'], cwd);
    await run('apt-get', ['download', ...packages], cwd);
  }
}

/**
 * Answers the folder holding `packages` unpacked (its `usr/`, `etc/`…), fetching them the first time.
 * `/lib` inside the packages is merged into `usr/lib`, as on a merged-/usr system, so that one
 * `usr/lib/x86_64-linux-gnu` holds every library.
 */
export async function unpackedPackages(name: string, packages: string[]): Promise<string> {
  const key = createHash('sha256').update(packages.join(' ')).digest('hex').slice(0, 12);
  const cache = await ownCacheRoot();
  const final = path.join(cache, `${name}-${key}`);
  if (existsSync(path.join(final, '.complete'))) return path.join(final, 'root');
  const work = path.join(cache, `.${name}-${randomBytes(4).toString('hex')}`);
  const debs = path.join(work, 'debs');
  const root = path.join(work, 'root');
  try {
    await mkdir(debs, { recursive: true });
    await mkdir(root);
    await download(packages, debs);
    for (const file of (await readdir(debs)).filter((f) => f.endsWith('.deb'))) await run('dpkg', ['-x', path.join(debs, file), root], work);
    if (existsSync(path.join(root, 'lib'))) {
      await cp(path.join(root, 'lib'), path.join(root, 'usr', 'lib'), { recursive: true, verbatimSymlinks: true });
      await rm(path.join(root, 'lib'), { recursive: true });
    }
    await rm(debs, { recursive: true });
    await writeFile(path.join(work, '.complete'), `${packages.join(' ')}\n`);
    if (existsSync(path.join(final, '.complete'))) {
      // Another process finished the same unpack meanwhile (its servers may be running from it).
      await rm(work, { recursive: true, force: true });
      return path.join(final, 'root');
    }
    // An interrupted unpack left an incomplete folder.
    await rm(final, { recursive: true, force: true });
    await rename(work, final);
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    // Another process finished the same unpack first.
    if (existsSync(path.join(final, '.complete'))) return path.join(final, 'root');
    throw error;
  }
  return path.join(final, 'root');
}

/** Debian's multiarch folder name for this machine (`x86_64-linux-gnu`, `aarch64-linux-gnu`). */
function multiarch(): string {
  const cpu = ({ x64: 'x86_64', arm64: 'aarch64' } as Record<string, string>)[process.arch];
  if (!cpu) throw new Error(`unpacked Debian packages: no multiarch name known for ${process.arch}`);
  return `${cpu}-linux-gnu`;
}

/** The library folders of an unpacked tree, for LD_LIBRARY_PATH. */
export function libraryPath(root: string): string {
  return [path.join(root, 'usr', 'lib', multiarch()), path.join(root, 'usr', 'lib')].join(':');
}
