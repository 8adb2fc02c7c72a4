import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const created = new Set<string>();

/** A fresh folder under the OS temp dir; removed by removeTempDirs(). */
export async function tempDir(prefix = 'ft-it-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  created.add(dir);
  return dir;
}

/** Removes every folder made by tempDir() so far (call in afterEach / afterAll). */
export async function removeTempDirs(): Promise<void> {
  const dirs = [...created];
  created.clear();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 3 })));
}
