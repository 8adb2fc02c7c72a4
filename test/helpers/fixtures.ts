import { existsSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBuffer } from './files.js';
import { REPO_ROOT } from './spawn-ft.js';
import { tempDir } from './temp.js';

export const FIXTURES_DIR = path.join(REPO_ROOT, 'fixtures');

export const FIXTURE_NAMES = ['three-body.txt', 'empty.txt', 'binary.bin', 'Ünïcödé 三体.txt'] as const;
export type FixtureName = (typeof FIXTURE_NAMES)[number];

export interface Fixtures {
  /** Path of each named fixture file: the repository's own, or generated stand-in. */
  file(name: FixtureName): string;
  /** The `tree` folder (nested folders and files). */
  tree: string;
  /** Names that had to be generated because fixtures/ did not have them. */
  generated: string[];
}

const THREE_BODY = Array.from(
  { length: 200 },
  (_, i) => `${i + 1}. Three suns rose over Trisolaris; the computer formed of soldiers kept counting. 三体\n`,
).join('');

async function generate(dir: string, name: FixtureName): Promise<void> {
  const file = path.join(dir, name);
  switch (name) {
    case 'three-body.txt':
      return writeFile(file, THREE_BODY);
    case 'empty.txt':
      return writeFile(file, '');
    case 'binary.bin': {
      // Every byte value, NULs and invalid UTF-8 included, then pseudo-random bytes.
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      return writeFile(file, Buffer.concat([all, randomBuffer(300_000, 'binary.bin'), all.reverse()]));
    }
    case 'Ünïcödé 三体.txt':
      return writeFile(file, 'Ünïcödé — 三体 — ½ ≠ ∞ — 🚀\n'.repeat(50));
  }
}

async function generateTree(root: string): Promise<void> {
  await mkdir(path.join(root, 'sub', 'deeper'), { recursive: true });
  await mkdir(path.join(root, 'other'), { recursive: true });
  await writeFile(path.join(root, 'top.txt'), 'top level\n');
  await writeFile(path.join(root, 'sub', 'middle.txt'), 'one level down\n');
  await writeFile(path.join(root, 'sub', 'deeper', 'bottom.bin'), randomBuffer(70_000, 'tree-bottom'));
  await writeFile(path.join(root, 'sub', 'deeper', 'empty'), '');
  await writeFile(path.join(root, 'other', 'same name.txt'), 'a space in the name\n');
}

function usable(file: string, kind: 'file' | 'dir'): boolean {
  if (!existsSync(file)) return false;
  const stat = statSync(file);
  return kind === 'file' ? stat.isFile() : stat.isDirectory();
}

/**
 * The fixtures the tests send. fixtures/ may still be being written when the tests run, so
 * each missing one is generated into a temp folder instead (the tests only need equivalent data).
 */
export async function loadFixtures(): Promise<Fixtures> {
  let fallback: string | undefined;
  const generated: string[] = [];
  const paths = new Map<FixtureName, string>();
  for (const name of FIXTURE_NAMES) {
    const real = path.join(FIXTURES_DIR, name);
    if (usable(real, 'file')) {
      paths.set(name, real);
      continue;
    }
    fallback ??= await tempDir('ft-fixtures-');
    await generate(fallback, name);
    paths.set(name, path.join(fallback, name));
    generated.push(name);
  }
  let tree = path.join(FIXTURES_DIR, 'tree');
  if (!usable(tree, 'dir')) {
    fallback ??= await tempDir('ft-fixtures-');
    tree = path.join(fallback, 'tree');
    await generateTree(tree);
    generated.push('tree');
  }
  return { file: (name) => paths.get(name)!, tree, generated };
}
