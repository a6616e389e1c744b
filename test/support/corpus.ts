/**
 * The corpus of real-world tricky messages (the Ruby `mail` gem's fixtures, MIT licensed: see
 * test/fixtures/mail-gem/MIT-LICENSE), kept in the repository so that a clone with nothing beside it
 * passes its tests. Paths are computed from this file, never hard-coded.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export function corpusDir(): string {
  return path.resolve(import.meta.dirname, '../fixtures/mail-gem');
}

/** Every .eml file of the corpus, recursively, as sorted paths relative to corpusDir() (`multi_charset/japanese.eml`). */
export function corpusFiles(): string[] {
  const root = corpusDir();
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return walk(full);
      return entry.isFile() && entry.name.endsWith('.eml') ? [path.relative(root, full).split(path.sep).join('/')] : [];
    });
  return walk(root).sort();
}

/** The bytes of one corpus message, by its path relative to corpusDir(). */
export function readCorpus(relativePath: string): Buffer {
  return readFileSync(path.join(corpusDir(), relativePath));
}

/** The enmime test messages (CC0, see test/fixtures/enmime/README.md), as paths relative to their directory. */
export function enmimeDir(): string {
  return path.resolve(import.meta.dirname, '../fixtures/enmime');
}

export function enmimeFiles(): string[] {
  const root = enmimeDir();
  return ['mail', 'parts', 'low-quality'].flatMap((dir) =>
    readdirSync(path.join(root, dir))
      .filter((name) => name.endsWith('.raw'))
      .map((name) => `${dir}/${name}`),
  ).sort();
}

export function readEnmime(relativePath: string): Buffer {
  return readFileSync(path.join(enmimeDir(), relativePath));
}
