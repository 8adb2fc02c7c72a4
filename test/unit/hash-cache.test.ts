import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Volume, createFsFromVolume } from 'memfs';
import { hashBytes } from '../../src/hashing.js';
import { fileSystemOf, type FileSystem } from '../../src/storage/file-system.js';
import { HashCache } from '../../src/transfer/hash-cache.js';
import { countingReads } from '../helpers/counting-fs.js';
import { hashLocalFile, KEEP_CONTENT_BYTES, type LocalFile } from '../../src/transfer/local-files.js';

const dirs: string[] = [];
async function cacheFile(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ft-hash-cache-'));
  dirs.push(dir);
  return path.join(dir, 'nested', 'hashes.json');
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

const identity = { dev: 1, ino: 42, size: 10, mtimeMs: 1000, ctimeMs: 2000 };
const HASH = 'xxh64:0123456789abcdef';

describe('HashCache', () => {
  it('returns a hash only for the same file unchanged in size, mtime and ctime', async () => {
    const cache = await HashCache.load(await cacheFile());
    cache.set(identity, HASH);
    expect(cache.get(identity)).toBe(HASH);
    expect(cache.get({ ...identity, size: 11 })).toBeUndefined();
    expect(cache.get({ ...identity, mtimeMs: 1001 })).toBeUndefined();
    expect(cache.get({ ...identity, ctimeMs: 2001 })).toBeUndefined();
    expect(cache.get({ ...identity, ino: 43 })).toBeUndefined();
  });

  it('survives a save and a load, creating the folder', async () => {
    const file = await cacheFile();
    const cache = await HashCache.load(file);
    cache.set(identity, HASH);
    await cache.save();
    expect((await HashCache.load(file)).get(identity)).toBe(HASH);
  });

  it('treats a corrupt or hostile cache file as empty and keeps only well-formed entries', async () => {
    const file = await cacheFile();
    await (await HashCache.load(file)).save(); // nothing to save: no file yet
    await expect(readFile(file)).rejects.toThrow();
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '{not json');
    expect((await HashCache.load(file)).get(identity)).toBeUndefined();
    await writeFile(file, JSON.stringify({ '1:42': { ...identity, hash: 'md5:nope' }, '1:43': { size: 10, mtimeMs: 1000, ctimeMs: 2000, hash: HASH } }));
    const loaded = await HashCache.load(file);
    expect(loaded.get(identity)).toBeUndefined();
    expect(loaded.get({ ...identity, ino: 43 })).toBe(HASH);
  });
});

describe('hashLocalFile with a cache', () => {
  /** A memfs file system whose reads (asynchronous and synchronous) are counted. */
  function countingFs(): { fs: FileSystem; reads: () => number; vol: InstanceType<typeof Volume> } {
    const vol = new Volume();
    const { fs, bytesRead } = countingReads(fileSystemOf(createFsFromVolume(vol)));
    return { fs, reads: bytesRead, vol };
  }

  it('reads a large unchanged file only once across runs, and again after it changes', async () => {
    const { fs, reads, vol } = countingFs();
    const size = KEEP_CONTENT_BYTES + 4096;
    const data = Buffer.alloc(size, 7);
    vol.writeFileSync('/big.bin', data);
    const file = await cacheFile();
    const local = (): LocalFile => ({ path: '/big.bin', name: 'big.bin', size, mtimeMs: 0, hash: '' });

    const first = local();
    const cache = await HashCache.load(file);
    await hashLocalFile(first, fs, { cache });
    await cache.save();
    expect(first.hash).toBe(await hashBytes(data));
    expect(reads()).toBe(size);

    const second = local();
    await hashLocalFile(second, fs, { cache: await HashCache.load(file) });
    expect(second.hash).toBe(first.hash);
    expect(reads()).toBe(size); // served from the cache: not one more byte read

    data[0] = 8;
    vol.writeFileSync('/big.bin', data);
    const third = local();
    await hashLocalFile(third, fs, { cache: await HashCache.load(file) });
    expect(third.hash).toBe(await hashBytes(data));
    expect(reads()).toBe(2 * size);
  });

  it('does not cache small files, whose bytes are kept for sending anyway', async () => {
    const { fs, reads, vol } = countingFs();
    vol.writeFileSync('/small.txt', 'three bodies');
    const cache = await HashCache.load(await cacheFile());
    for (let i = 0; i < 2; i++) {
      const small: LocalFile = { path: '/small.txt', name: 'small.txt', size: 12, mtimeMs: 0, hash: '' };
      await hashLocalFile(small, fs, { cache, keep: true });
      expect(small.content?.toString()).toBe('three bodies');
    }
    expect(reads()).toBe(24);
  });
});
