#!/usr/bin/env node
// Builds dist/ from src/ with tsc, but only when the sources changed since the last build: `npm start`
// runs it first (prestart), so a second start serves in about a second instead of type-checking the
// whole project again (~15 s). "Changed" is judged by content, not by file times: a digest of every
// file under src/, the tsconfig files and the TypeScript version, kept in dist/.source-digest.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DIGEST_FILE = '.source-digest';

/** Every file under dir, as sorted paths relative to root. */
function filesUnder(root, dir) {
  const full = path.join(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(root, path.join(entry.parentPath ?? entry.path, entry.name)).split(path.sep).join('/'))
    .sort();
}

/** A digest of what the build reads: src/, the tsconfig files, and the compiler's version. */
export function sourceDigest(root, compilerVersion = '') {
  const hash = createHash('sha256').update(`typescript ${compilerVersion}\n`);
  for (const file of [...filesUnder(root, 'src'), 'tsconfig.json', 'tsconfig.build.json']) {
    const full = path.join(root, file);
    if (!existsSync(full)) continue;
    hash.update(`${file}\n`).update(readFileSync(full)).update('\n');
  }
  return hash.digest('hex');
}

/** True when dist/ was built from exactly these sources. */
export function isBuildFresh(root, digest) {
  const file = path.join(root, 'dist', DIGEST_FILE);
  return existsSync(path.join(root, 'dist', 'server.js')) && existsSync(file) && readFileSync(file, 'utf8').trim() === digest;
}

function main() {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const force = process.argv.includes('--force');
  const require = createRequire(import.meta.url);
  let tsc;
  let version = '';
  try {
    tsc = require.resolve('typescript/bin/tsc');
    version = require('typescript/package.json').version;
  } catch {
    tsc = undefined;
  }
  const digest = sourceDigest(root, version);
  if (!force && isBuildFresh(root, digest)) return;
  if (tsc === undefined) {
    console.error('build: TypeScript is not installed (run `npm ci`, which installs the dev dependencies)');
    process.exit(1);
  }
  console.log('build: sources changed since the last build; compiling src/ to dist/');
  // A clean dist/: a deleted source must not leave its old output behind.
  rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
  writeFileSync(path.join(root, 'dist', DIGEST_FILE), `${digest}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) main();
