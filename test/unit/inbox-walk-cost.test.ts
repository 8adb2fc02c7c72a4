/**
 * "No quadratic walks" (issue 9, point 5, for the inbox): with folder handles, placing a file
 * 200 folders deep costs a few system calls per folder, each on a short path, not an lstat of
 * ever-longer full paths.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { Inbox } from '../../src/storage/local/inbox.js';
import type { Partial } from '../../src/storage/local/partials.js';

let base: string;
beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'ft-walk-cost-'));
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

/** Records the length of every path handed to a synchronous call. */
function recording(fs: FileSystem): { fs: FileSystem; paths: string[] } {
  const paths: string[] = [];
  const wrapped = { ...fs };
  for (const [name, call] of Object.entries(fs)) {
    if (!name.endsWith('Sync') || typeof call !== 'function') continue;
    (wrapped as Record<string, unknown>)[name] = (...args: unknown[]) => {
      for (const arg of args) if (typeof arg === 'string') paths.push(arg);
      return (call as (...a: unknown[]) => unknown)(...args);
    };
  }
  return { fs: wrapped, paths };
}

it.runIf(process.platform === 'linux')('places a file 200 folders deep with O(depth) calls on short paths', async () => {
  const { fs, paths } = recording(nodeFileSystem);
  const inbox = await Inbox.open(path.join(base, 'inbox'), fs, 'rename');
  try {
    expect(inbox.folderMode).toBe('handles');
    const depth = 200;
    const components = [...Array.from({ length: depth }, (_, i) => `folder-${i}`), 'deep.txt'];
    const dataPath = path.join(inbox.partials.dir, 'deep.part');
    await writeFile(dataPath, 'deep\n');
    const partial = { dataPath, id: { size: 5 }, size: 5, forgetMeta: () => undefined, discard: () => undefined } as unknown as Partial;
    paths.length = 0;
    expect(await inbox.inspect(components)).toEqual({ kind: 'free' });
    const placed = await inbox.place(partial, components);
    expect(placed.path).toBe(components.join('/'));
    expect(await readFile(path.join(inbox.root, ...components), 'utf8')).toBe('deep\n');
    // Creating a folder is mkdir, open, fstat, close: a handful of calls per level in all.
    expect(paths.length).toBeLessThan(8 * depth);
    // Paths stay short: the inbox's own (root, partial) or one component below a descriptor.
    const longest = Math.max(...paths.map((p) => (p.startsWith('/proc/self/fd/') ? p.length : 0)));
    expect(longest).toBeLessThan('/proc/self/fd/99999/'.length + 'folder-199'.length + 20);
    const full = paths.filter((p) => !p.startsWith('/proc/self/fd/'));
    expect(Math.max(...full.map((p) => p.length))).toBeLessThan(inbox.root.length + 80);
  } finally {
    inbox.close();
  }
});
