/**
 * `npm start` rebuilds dist/ only when the sources changed (scripts/build.mjs): judged by content, so
 * a second start does not type-check the project again, and an edit is never served stale.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
// @ts-expect-error -- a plain .mjs script without type declarations
import { isBuildFresh, sourceDigest } from '../../scripts/build.mjs';

const digestOf = sourceDigest as (root: string, version?: string) => string;
const fresh = isBuildFresh as (root: string, digest: string) => boolean;

describe('the build before npm start', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mailgw-build-'));
    await mkdir(path.join(root, 'src', 'http'), { recursive: true });
    await writeFile(path.join(root, 'src', 'app.ts'), 'export const a = 1;\n');
    await writeFile(path.join(root, 'src', 'http', 'route.ts'), 'export const r = 1;\n');
    await writeFile(path.join(root, 'tsconfig.json'), '{}\n');
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('is fresh after a build of the same sources, and stale after any change to them', async () => {
    const built = digestOf(root, '5.9.3');
    await mkdir(path.join(root, 'dist'));
    await writeFile(path.join(root, 'dist', 'server.js'), '');
    await writeFile(path.join(root, 'dist', '.source-digest'), `${built}\n`);
    expect(fresh(root, digestOf(root, '5.9.3'))).toBe(true);

    await writeFile(path.join(root, 'src', 'http', 'route.ts'), 'export const r = 2;\n');
    expect(fresh(root, digestOf(root, '5.9.3'))).toBe(false);
    await writeFile(path.join(root, 'src', 'http', 'route.ts'), 'export const r = 1;\n');
    expect(fresh(root, digestOf(root, '5.9.3'))).toBe(true);

    await writeFile(path.join(root, 'src', 'new.ts'), '');
    expect(digestOf(root, '5.9.3')).not.toBe(built);
    await rm(path.join(root, 'src', 'new.ts'));
    await writeFile(path.join(root, 'tsconfig.json'), '{"compilerOptions":{}}\n');
    expect(digestOf(root, '5.9.3')).not.toBe(built);
    await writeFile(path.join(root, 'tsconfig.json'), '{}\n');
    expect(digestOf(root, '6.0.0')).not.toBe(built);
    expect(digestOf(root, '5.9.3')).toBe(built);
  });

  it('is stale when dist/ is missing its entry point, whatever the digest says', async () => {
    const built = digestOf(root);
    await mkdir(path.join(root, 'dist'));
    await writeFile(path.join(root, 'dist', '.source-digest'), `${built}\n`);
    expect(fresh(root, built)).toBe(false);
  });
});
