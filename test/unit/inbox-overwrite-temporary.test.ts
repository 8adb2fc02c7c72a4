/**
 * Point 20 of issue 9: under `overwrite` the file lands under a temporary name beside its target
 * first. A temporary name that is already taken must never be renamed over the target.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { nodeFileSystem } from '../../src/file-system.js';
import { Inbox } from '../../src/storage/local/inbox.js';
import type { Partial } from '../../src/storage/local/partials.js';

// The first two temporary names are predictable (and will be taken); the rest are random as usual.
const suffixes = vi.hoisted(() => ['0badf00d', '0badf00d', 'feedbeef']);
vi.mock('../../src/storage/inbox-names.js', async (original) => {
  const real = await original<typeof import('../../src/storage/local/inbox-names.js')>();
  return { ...real, randomSuffix: () => suffixes.shift() ?? real.randomSuffix() };
});

let base: string;
let inbox: Inbox;
beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'ft-overwrite-temp-'));
});
afterEach(async () => {
  inbox?.close();
  await rm(base, { recursive: true, force: true });
});

it.each([true, false])('never renames a taken temporary name over the target (folder handles: %s)', async (folderHandles) => {
  suffixes.splice(0, suffixes.length, '0badf00d', '0badf00d', 'feedbeef');
  inbox = await Inbox.open(path.join(base, 'inbox'), nodeFileSystem, 'overwrite', { folderHandles });
  await writeFile(path.join(inbox.root, 'a.txt'), 'old\n');
  // Someone who can write to the inbox put a file at the temporary name the receiver picks first.
  await writeFile(path.join(inbox.root, 'a.txt.ft-0badf00d'), 'planted\n');
  const dataPath = path.join(inbox.partials.dir, 'upload.part');
  await writeFile(dataPath, 'uploaded\n');
  const partial = { dataPath, id: { size: 9 }, size: 9, forgetMeta: () => undefined, discard: () => undefined } as unknown as Partial;

  const placed = await inbox.place(partial, ['a.txt']);

  expect(placed).toMatchObject({ path: 'a.txt', deduplicated: false });
  expect(await readFile(path.join(inbox.root, 'a.txt'), 'utf8')).toBe('uploaded\n');
  expect(await readFile(path.join(inbox.root, 'a.txt.ft-0badf00d'), 'utf8')).toBe('planted\n');
  expect((await readdir(inbox.root)).sort()).toEqual(['.ft-partial', 'a.txt', 'a.txt.ft-0badf00d']);
  expect(await readdir(inbox.partials.dir)).toEqual([]);
});
