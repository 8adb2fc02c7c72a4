import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Volume, createFsFromVolume } from 'memfs';
import { hashBytes } from '../../src/hashing.js';
import { fileSystemOf, type FileSystem } from '../../src/file-system.js';
import { HashCache } from '../../src/sender/hash-cache.js';
import { countingReads } from '../helpers/counting-fs.js';
import { hashLocalFile, KEEP_CONTENT_BYTES, type LocalFile } from '../../src/sender/local-files.js';

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
    await writeFile(
      file,
      JSON.stringify({
        version: 2,
        hashes: { '1:42': { ...identity, hash: 'md5:nope' }, '1:43': { size: 10, mtimeMs: 1000, ctimeMs: 2000, hash: HASH }, __proto__: 'x' },
        receipts: [{ ...stored, receipt: 'short' }, { ...stored, receiver: null }, 'junk', stored],
      }),
    );
    const loaded = await HashCache.load(file);
    expect(loaded.get(identity)).toBeUndefined();
    expect(loaded.get({ ...identity, ino: 43 })).toBe(HASH);
    expect(loaded.receiptCount).toBe(1);
    expect(loaded.receiptFor(receiver, 'a.txt', identity, HASH)?.receipt).toBe(RECEIPT);
  });

  it('reads a file of the old format (version 1, or none) as empty, and a save replaces it', async () => {
    const file = await cacheFile();
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify({ '1:42': { size: 10, mtimeMs: 1000, ctimeMs: 2000, hash: HASH } }));
    const old = await HashCache.load(file);
    expect(old.get(identity)).toBeUndefined();
    old.setReceipt(stored);
    await old.save();
    const saved = JSON.parse(await readFile(file, 'utf8')) as { version: number };
    expect(saved.version).toBe(2);
    expect((await HashCache.load(file)).receiptFor(receiver, 'a.txt', identity, HASH)?.receipt).toBe(RECEIPT);
  });

  it('saves owner-only (it lists what was sent where)', async () => {
    const file = await cacheFile();
    const cache = await HashCache.load(file);
    cache.setReceipt(stored);
    await cache.save();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});

const receiver = { name: 'laptop', host: '127.0.0.1', port: 9527 };
const RECEIPT = 'A'.repeat(40);
const stored = { receiver, name: 'a.txt', file: identity, hash: HASH, receipt: RECEIPT };

describe('receipts in the cache', () => {
  it('are found only for the same receiver, name and unchanged file (and the same hash when known)', async () => {
    const cache = await HashCache.load(await cacheFile());
    cache.setReceipt(stored);
    expect(cache.receiptFor(receiver, 'a.txt', identity, HASH)?.receipt).toBe(RECEIPT);
    expect(cache.receiptFor(receiver, 'a.txt', identity, undefined)?.hash).toBe(HASH);
    expect(cache.receiptFor(receiver, 'a.txt', identity, 'xxh64:ffffffffffffffff')).toBeUndefined();
    expect(cache.receiptFor({ ...receiver, name: 'impostor' }, 'a.txt', identity, HASH)).toBeUndefined();
    expect(cache.receiptFor({ ...receiver, host: 'laptop.local' }, 'a.txt', identity, HASH)).toBeUndefined();
    expect(cache.receiptFor({ ...receiver, port: 9528 }, 'a.txt', identity, HASH)).toBeUndefined();
    expect(cache.receiptFor(receiver, 'b.txt', identity, HASH)).toBeUndefined();
    for (const changed of [{ size: 11 }, { mtimeMs: 1001 }, { ctimeMs: 2001 }, { ino: 43 }, { dev: 2 }]) {
      expect(cache.receiptFor(receiver, 'a.txt', { ...identity, ...changed }, HASH)).toBeUndefined();
    }
    cache.dropReceipt(receiver, 'a.txt', identity);
    expect(cache.receiptFor(receiver, 'a.txt', identity, HASH)).toBeUndefined();
  });

  it('are bounded: beyond 50,000 the oldest are dropped, in memory and on disk', async () => {
    const file = await cacheFile();
    const cache = await HashCache.load(file);
    const total = 50_010;
    for (let ino = 0; ino < total; ino++) cache.setReceipt({ ...stored, name: `f${ino}`, file: { ...identity, ino } });
    expect(cache.receiptCount).toBe(50_000);
    const oldest = (ino: number) => ({ ...identity, ino });
    expect(cache.receiptFor(receiver, 'f9', oldest(9), HASH)).toBeUndefined();
    expect(cache.receiptFor(receiver, 'f10', oldest(10), HASH)).toBeDefined();
    await cache.save();
    const loaded = await HashCache.load(file);
    expect(loaded.receiptCount).toBe(50_000);
    expect(loaded.receiptFor(receiver, `f${total - 1}`, oldest(total - 1), HASH)).toBeDefined();
  });

  it('are bounded in size too: long names and receipts count', async () => {
    const cache = await HashCache.load(await cacheFile());
    const longName = 'n'.repeat(4000);
    const longReceipt = 'R'.repeat(2048);
    for (let ino = 0; ino < 6000; ino++) cache.setReceipt({ ...stored, name: `${longName}${ino}`, file: { ...identity, ino }, receipt: longReceipt });
    // 32 MiB of characters in all: about 5,300 such entries, not 6,000.
    expect(cache.receiptCount).toBeLessThan(5500);
    expect(cache.receiptCount).toBeGreaterThan(5000);
  });

  it('two senders saving at once keep both their changes, and the file is always whole', async () => {
    const file = await cacheFile();
    const base = await HashCache.load(file);
    base.setReceipt(stored);
    await base.save();
    const caches = await Promise.all(Array.from({ length: 6 }, () => HashCache.load(file)));
    for (const [index, cache] of caches.entries()) {
      for (let i = 0; i < 20; i++) cache.setReceipt({ ...stored, name: `c${index}-${i}`, file: { ...identity, ino: 1000 * index + i } });
      cache.set({ ...identity, ino: 5000 + index }, HASH);
    }
    // One of them also forgets the receipt they all loaded.
    caches[0]!.dropReceipt(receiver, 'a.txt', identity);
    const reads: Array<Promise<void>> = [];
    const saving = Promise.all(caches.map((cache) => cache.save()));
    for (let i = 0; i < 20; i++) {
      reads.push(
        readFile(file, 'utf8').then((text) => {
          expect(JSON.parse(text)).toMatchObject({ version: 2 });
        }),
      );
    }
    await saving;
    await Promise.all(reads);
    const merged = await HashCache.load(file);
    expect(merged.receiptCount).toBe(6 * 20);
    expect(merged.receiptFor(receiver, 'a.txt', identity, HASH)).toBeUndefined();
    for (let index = 0; index < 6; index++) {
      expect(merged.receiptFor(receiver, `c${index}-19`, { ...identity, ino: 1000 * index + 19 }, HASH)).toBeDefined();
      expect(merged.get({ ...identity, ino: 5000 + index })).toBe(HASH);
    }
    expect((await readdir(path.dirname(file))).sort()).toEqual(['hashes.json']);
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

  it('does not cache small files, whose bytes are kept for sending anyway, but notes their identity from the same read', async () => {
    const { fs, reads, vol } = countingFs();
    vol.writeFileSync('/small.txt', 'three bodies');
    const cache = await HashCache.load(await cacheFile());
    for (let i = 0; i < 2; i++) {
      const small: LocalFile = { path: '/small.txt', name: 'small.txt', size: 12, mtimeMs: 0, hash: '' };
      await hashLocalFile(small, fs, { cache, keep: true });
      expect(small.content?.toString()).toBe('three bodies');
      const stat = vol.statSync('/small.txt');
      // The identity a receipt is kept for, taken from the open file's fstat.
      expect(small.identity).toEqual({ dev: stat.dev, ino: stat.ino, size: 12, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs });
    }
    expect(reads()).toBe(24);
  });
});
