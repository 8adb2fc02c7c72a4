import { promises as nodeFs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FtError, type ErrorCode } from '../../src/errors.js';
import { hashBytes } from '../../src/hashing.js';
import { BodyWriter } from '../../src/storage/body-writer.js';
import { fileSystemOf, nodeFileSystem, type FileSystem } from '../../src/storage/file-system.js';
import { Inbox, type ConflictPolicy } from '../../src/storage/inbox.js';
import { partialKey, type ContentId, type Partial } from '../../src/storage/partials.js';

/** The full promises API, for test setup (symlink, rm, …) beyond the FileSystem slice ft uses. */
type FullFs = typeof nodeFs;

interface Backend {
  name: string;
  create(): Promise<{ fs: FullFs; ft: FileSystem; base: string; cleanup: () => Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'memfs',
    async create() {
      const volume = createFsFromVolume(new Volume());
      const fs = volume.promises as unknown as FullFs;
      await fs.mkdir('/base', { recursive: true });
      return { fs, ft: fileSystemOf(volume), base: '/base', cleanup: async () => undefined };
    },
  },
  {
    name: 'a real temp dir',
    async create() {
      const base = await nodeFs.mkdtemp(path.join(os.tmpdir(), 'ft-storage-test-'));
      return { fs: nodeFs, ft: nodeFileSystem, base, cleanup: () => nodeFs.rm(base, { recursive: true, force: true }) };
    },
  },
];

async function expectFtError(promise: Promise<unknown>, code: ErrorCode): Promise<FtError> {
  let thrown: unknown;
  try {
    await promise;
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected an FtError ${code}`).toBeInstanceOf(FtError);
  expect((thrown as FtError).code).toBe(code);
  return thrown as FtError;
}

function content(size: number, seed: number): Buffer {
  const bytes = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

async function idOf(bytes: Buffer): Promise<ContentId> {
  return { size: bytes.length, hash: await hashBytes(bytes) };
}

describe.each(backends)('storage contract on $name', (backend) => {
  let fs: FullFs;
  let ft: FileSystem;
  let base: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ fs, ft, base, cleanup } = await backend.create());
  });
  afterEach(async () => {
    await cleanup();
  });

  const ftFs = (): FileSystem => ft;
  const openInbox = (policy: ConflictPolicy = 'rename', dir = path.join(base, 'inbox')) => Inbox.open(dir, ftFs(), policy);

  async function exists(file: string): Promise<boolean> {
    try {
      await fs.lstat(file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  /** Writes `bytes` into the partial from `from` on, as a receiver session does. */
  async function writeBody(partial: Partial, bytes: Buffer, from = 0): Promise<void> {
    const handle = await partial.openForWrite(from);
    try {
      const writer = new BodyWriter(handle, from);
      for (let at = 0; at < bytes.length; at += 333) {
        if (!writer.write(bytes.subarray(at, at + 333))) await writer.drained();
      }
      await writer.flush();
      expect(writer.position).toBe(from + bytes.length);
    } finally {
      await handle.close();
    }
  }

  /** A complete partial for `bytes`, held, ready to be placed. */
  async function stage(inbox: Inbox, bytes: Buffer, filename = 'x'): Promise<Partial> {
    // Each staged upload comes from its own connection.
    const partial = await inbox.partials.acquire(await idOf(bytes), filename, {});
    expect(partial).toBeDefined();
    await writeBody(partial!, bytes);
    return partial!;
  }

  describe('Inbox.open', () => {
    it('creates the folder and its hidden partial folder', async () => {
      const inbox = await openInbox('rename', path.join(base, 'deep', 'er', 'inbox'));
      expect((await fs.lstat(inbox.root)).isDirectory()).toBe(true);
      expect(inbox.partials.dir).toBe(path.join(inbox.root, '.ft-partial'));
      expect((await fs.lstat(inbox.partials.dir)).isDirectory()).toBe(true);
    });

    it('opens an existing inbox again without losing partials', async () => {
      const first = await openInbox();
      const bytes = content(100, 1);
      const partial = await stage(first, bytes.subarray(0, 40) as Buffer);
      partial.release();
      const again = await openInbox();
      expect(await fs.readdir(again.partials.dir)).toEqual(expect.arrayContaining([`${partialKey(await idOf(bytes.subarray(0, 40) as Buffer))}.part`]));
    });

    it('refuses a partial folder that is a symbolic link', async () => {
      const dir = path.join(base, 'inbox');
      await fs.mkdir(path.join(base, 'elsewhere'), { recursive: true });
      await fs.mkdir(dir, { recursive: true });
      await fs.symlink(path.join(base, 'elsewhere'), path.join(dir, '.ft-partial'));
      await expectFtError(Inbox.open(dir, ftFs(), 'rename'), 'UNSAFE_PATH');
    });
  });

  describe('PartialStore.acquire', () => {
    it('returns offset 0 for new content, and writes its metadata only when the body starts', async () => {
      const inbox = await openInbox();
      // Only bodies streamed to disk (over 1 MiB) get a metadata file.
      const size = 1024 * 1024 + 1000;
      const id = await idOf(content(size, 2));
      const before = Date.now();
      const partial = await inbox.partials.acquire(id, 'docs/report.pdf', {});
      expect(partial).toBeDefined();
      expect(partial!.offset).toBe(0);
      expect(partial!.key).toBe(`${id.hash!.slice('xxh64:'.length)}-${size}`);
      expect(partial!.dataPath).toBe(path.join(inbox.partials.dir, `${partial!.key}.part`));
      const metaPath = path.join(inbox.partials.dir, `${partial!.key}.json`);
      expect(await exists(metaPath)).toBe(false);
      await (await partial!.openForWrite(0)).close();
      const meta = JSON.parse(await fs.readFile(path.join(inbox.partials.dir, `${partial!.key}.json`), 'utf8'));
      expect(meta).toMatchObject({ filename: 'docs/report.pdf', size, hash: id.hash });
      expect(Date.parse(meta.createdAt)).toBeGreaterThanOrEqual(before - 1000);
      expect(await exists(partial!.dataPath)).toBe(true);
    });

    it('says busy (undefined) when another connection acquires the same content while it is held', async () => {
      const inbox = await openInbox();
      const [connA, connB] = [{}, {}];
      const id = await idOf(content(10, 3));
      const first = await inbox.partials.acquire(id, 'a', connA);
      expect(first).toBeDefined();
      expect(await inbox.partials.acquire(id, 'another name', connB)).toBeUndefined();
      // Other content is not affected.
      expect(await inbox.partials.acquire(await idOf(content(10, 4)), 'b', connB)).toBeDefined();
      first!.release();
      const second = await inbox.partials.acquire(id, 'a', connB);
      expect(second).toBeDefined();
      expect(second!.key).toBe(first!.key);
      expect(await inbox.partials.acquire(id, 'a', connA)).toBeUndefined();
    });

    it('lets exactly one of two connections acquiring the same content at once win', async () => {
      const inbox = await openInbox();
      const id = await idOf(content(10, 5));
      const results = await Promise.all([inbox.partials.acquire(id, 'a', {}), inbox.partials.acquire(id, 'a', {})]);
      expect(results.filter((r) => r !== undefined)).toHaveLength(1);
    });

    it('gives the same connection a second, private partial for the same content, never offered for resume', async () => {
      const inbox = await openInbox();
      const conn = {};
      const bytes = content(100, 14);
      const id = await idOf(bytes);
      const shared = await inbox.partials.acquire(id, 'a.bin', {});
      await writeBody(shared!, bytes.subarray(0, 60) as Buffer);
      shared!.release();

      const first = await inbox.partials.acquire(id, 'a.bin', conn);
      expect(first!.shared).toBe(true);
      expect(first!.offset).toBe(60);
      const copy = await inbox.partials.acquire(id, 'copy of a.bin', conn);
      expect(copy).toBeDefined();
      expect(copy!.shared).toBe(false);
      expect(copy!.key).toMatch(new RegExp(`^${first!.key}~[0-9a-f]{8}$`));
      expect(copy!.dataPath).not.toBe(first!.dataPath);
      expect(copy!.offset).toBe(0);
      // Still busy for everyone else.
      expect(await inbox.partials.acquire(id, 'a.bin', {})).toBeUndefined();

      // Both can be written and placed independently.
      await writeBody(first!, bytes.subarray(60) as Buffer, 60);
      await writeBody(copy!, bytes);
      expect(await inbox.place(first!, ['a.bin'])).toBe('a.bin');
      expect(await inbox.place(copy!, ['copy.bin'])).toBe('copy.bin');
      first!.release();
      copy!.release();
      expect((await fs.readFile(path.join(inbox.root, 'copy.bin'))).equals(bytes)).toBe(true);
      expect((await fs.readFile(path.join(inbox.root, 'a.bin'))).equals(bytes)).toBe(true);
    });

    it('deletes the leftovers of a private partial on release, but keeps the shared one for resume', async () => {
      const inbox = await openInbox();
      const conn = {};
      const bytes = content(100, 15);
      const id = await idOf(bytes);
      const first = await inbox.partials.acquire(id, 'a', conn);
      const copy = await inbox.partials.acquire(id, 'a', conn);
      await writeBody(first!, bytes.subarray(0, 30) as Buffer);
      await writeBody(copy!, bytes.subarray(0, 40) as Buffer);
      copy!.release();
      first!.release();
      // Private leftovers are removed in the background (a body this small has no metadata file).
      await vi.waitFor(async () => {
        expect((await fs.readdir(inbox.partials.dir)).sort()).toEqual([`${first!.key}.part`]);
      });
      const again = await inbox.partials.acquire(id, 'a', {});
      expect(again!.offset).toBe(30);
    });

    it('resumes from the bytes written before release, and hashPrefix hashes exactly that prefix', async () => {
      const inbox = await openInbox();
      const bytes = content(1024 * 1024 + 5000, 6);
      const id = await idOf(bytes);
      const first = await inbox.partials.acquire(id, 'big.bin', { connection: 1 });
      await writeBody(first!, bytes.subarray(0, 1234) as Buffer);
      const metaPath = path.join(inbox.partials.dir, `${first!.key}.json`);
      const metaBefore = await fs.readFile(metaPath, 'utf8');
      first!.release();

      const second = await inbox.partials.acquire(id, 'big.bin', { connection: 2 });
      expect(second).toBeDefined();
      expect(second!.offset).toBe(1234);
      const { hasher, prefixHash } = await second!.hashPrefix();
      expect(prefixHash).toBe(await hashBytes(bytes.subarray(0, 1234)));
      // The hasher goes on with the rest of the content.
      hasher.update(bytes.subarray(1234));
      expect(hasher.digest()).toBe(id.hash);
      // Metadata from the first attempt is kept.
      expect(await fs.readFile(metaPath, 'utf8')).toBe(metaBefore);

      // Finishing from the offer leaves the whole content in the partial.
      await writeBody(second!, bytes.subarray(1234) as Buffer, 1234);
      expect((await fs.readFile(second!.dataPath)).equals(bytes)).toBe(true);
    });

    it('gives a prefix hash of an empty hasher when nothing is held', async () => {
      const inbox = await openInbox();
      const partial = await inbox.partials.acquire(await idOf(content(10, 7)), 'a', {});
      const { prefixHash } = await partial!.hashPrefix();
      expect(prefixHash).toBe(await hashBytes(new Uint8Array(0)));
    });

    it('discards a partial larger than the announced size', async () => {
      const inbox = await openInbox();
      const bytes = content(100, 8);
      const id = await idOf(bytes);
      const dataPath = path.join(inbox.partials.dir, `${partialKey(id)}.part`);
      await fs.writeFile(dataPath, Buffer.concat([bytes, Buffer.from('extra')]));
      const partial = await inbox.partials.acquire(id, 'a', {});
      expect(partial!.offset).toBe(0);
      expect(await exists(dataPath)).toBe(false);
    });

    it('keeps a partial exactly as large as the announced size (offset = size)', async () => {
      const inbox = await openInbox();
      const bytes = content(100, 9);
      const id = await idOf(bytes);
      await fs.writeFile(path.join(inbox.partials.dir, `${partialKey(id)}.part`), bytes);
      const partial = await inbox.partials.acquire(id, 'a', {});
      expect(partial!.offset).toBe(100);
      expect((await partial!.hashPrefix()).prefixHash).toBe(id.hash);
    });

    it('openForWrite(from) cuts off what lies beyond `from`, openForWrite(0) starts over', async () => {
      const inbox = await openInbox();
      const bytes = content(300, 10);
      const partial = await inbox.partials.acquire(await idOf(bytes), 'a', {});
      await writeBody(partial!, content(200, 11)); // wrong bytes
      await writeBody(partial!, bytes.subarray(0, 150) as Buffer, 0);
      expect((await fs.readFile(partial!.dataPath)).equals(bytes.subarray(0, 150))).toBe(true);
      await writeBody(partial!, content(100, 12), 150); // 150..250 wrong
      await writeBody(partial!, bytes.subarray(100) as Buffer, 100); // rewrite from 100
      expect((await fs.readFile(partial!.dataPath)).equals(bytes)).toBe(true);
    });

    it('discard removes the data and the metadata', async () => {
      const inbox = await openInbox();
      const bytes = content(50, 13);
      const partial = await stage(inbox, bytes);
      await partial.discard();
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
      await partial.discard(); // twice is fine
    });
  });

  describe('Inbox.inspect', () => {
    async function putFile(inbox: Inbox, name: string, bytes: Buffer): Promise<void> {
      const file = path.join(inbox.root, ...name.split('/'));
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, bytes);
    }

    it.each(['rename', 'overwrite', 'reject'] as const)('says free for a missing name (%s)', async (policy) => {
      const inbox = await openInbox(policy);
      expect(await inbox.inspect(['new', 'dir', 'a.txt'], await idOf(content(10, 1)))).toEqual({ kind: 'free' });
    });

    it.each(['rename', 'overwrite', 'reject'] as const)('says identical for the same content under the name (%s)', async (policy) => {
      const inbox = await openInbox(policy);
      const bytes = content(4000, 2);
      await putFile(inbox, 'd/a.txt', bytes);
      expect(await inbox.inspect(['d', 'a.txt'], await idOf(bytes))).toEqual({ kind: 'identical', path: 'd/a.txt' });
    });

    it('under reject, says conflict for different content, also of the same size', async () => {
      const inbox = await openInbox('reject');
      await putFile(inbox, 'a.txt', content(100, 3));
      const sameSize = await inbox.inspect(['a.txt'], await idOf(content(100, 4)));
      expect(sameSize.kind).toBe('conflict');
      const otherSize = await inbox.inspect(['a.txt'], await idOf(content(101, 4)));
      expect(otherSize.kind).toBe('conflict');
      if (otherSize.kind === 'conflict') expect(otherSize.reason).toContain('a.txt');
    });

    it('under overwrite, says free for a different file but conflict for a folder', async () => {
      const inbox = await openInbox('overwrite');
      await putFile(inbox, 'a.txt', content(100, 5));
      expect(await inbox.inspect(['a.txt'], await idOf(content(100, 6)))).toEqual({ kind: 'free' });
      await fs.mkdir(path.join(inbox.root, 'folder'));
      expect((await inbox.inspect(['folder'], await idOf(content(100, 6)))).kind).toBe('conflict');
    });

    it('under rename, says free for a different file, and identical when a renamed copy has the content', async () => {
      const inbox = await openInbox('rename');
      const bytes = content(100, 7);
      await putFile(inbox, 'a.txt', content(100, 8));
      expect(await inbox.inspect(['a.txt'], await idOf(bytes))).toEqual({ kind: 'free' });
      await putFile(inbox, 'a (1).txt', bytes);
      expect(await inbox.inspect(['a.txt'], await idOf(bytes))).toEqual({ kind: 'identical', path: 'a (1).txt' });
    });

    it('notices when a file changes after it was hashed', async () => {
      const inbox = await openInbox('reject');
      const bytes = content(100, 9);
      await putFile(inbox, 'a.txt', bytes);
      expect((await inbox.inspect(['a.txt'], await idOf(bytes))).kind).toBe('identical');
      await fs.unlink(path.join(inbox.root, 'a.txt'));
      await putFile(inbox, 'a.txt', content(100, 10));
      await fs.utimes(path.join(inbox.root, 'a.txt'), new Date(Date.now() + 5000), new Date(Date.now() + 5000));
      expect((await inbox.inspect(['a.txt'], await idOf(bytes))).kind).toBe('conflict');
    });
  });

  describe('Inbox.place', () => {
    it('moves the partial to its name, creating folders, and removes the partial files', async () => {
      const inbox = await openInbox('rename');
      const bytes = content(2000, 20);
      const partial = await stage(inbox, bytes, 'a/b/c.bin');
      expect(await inbox.place(partial, ['a', 'b', 'c.bin'])).toBe('a/b/c.bin');
      expect((await fs.readFile(path.join(inbox.root, 'a', 'b', 'c.bin'))).equals(bytes)).toBe(true);
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
    });

    it("under rename, keeps the existing different file and uses 'name (1).ext', then 'name (2).ext'", async () => {
      const inbox = await openInbox('rename');
      const original = content(100, 21);
      await fs.mkdir(path.join(inbox.root, 'docs'));
      await fs.writeFile(path.join(inbox.root, 'docs', 'a.txt'), original);

      const first = content(100, 22);
      expect(await inbox.place(await stage(inbox, first), ['docs', 'a.txt'])).toBe('docs/a (1).txt');
      const second = content(100, 23);
      expect(await inbox.place(await stage(inbox, second), ['docs', 'a.txt'])).toBe('docs/a (2).txt');

      expect((await fs.readFile(path.join(inbox.root, 'docs', 'a.txt'))).equals(original)).toBe(true);
      expect((await fs.readFile(path.join(inbox.root, 'docs', 'a (1).txt'))).equals(first)).toBe(true);
      expect((await fs.readFile(path.join(inbox.root, 'docs', 'a (2).txt'))).equals(second)).toBe(true);
    });

    it('under rename, numbers before the whole extension, and after a name without one', async () => {
      const inbox = await openInbox('rename');
      await fs.writeFile(path.join(inbox.root, 'archive.tar.gz'), 'old');
      await fs.writeFile(path.join(inbox.root, 'README'), 'old');
      await fs.writeFile(path.join(inbox.root, '.env'), 'old');
      expect(await inbox.place(await stage(inbox, content(10, 24)), ['archive.tar.gz'])).toBe('archive (1).tar.gz');
      expect(await inbox.place(await stage(inbox, content(10, 25)), ['README'])).toBe('README (1)');
      expect(await inbox.place(await stage(inbox, content(10, 26)), ['.env'])).toBe('.env (1)');
    });

    it('under rename, two placements racing for one name both land, under different names', async () => {
      const inbox = await openInbox('rename');
      const a = content(100, 27);
      const b = content(100, 28);
      const [pa, pb] = [await stage(inbox, a), await stage(inbox, b)];
      const names = (await Promise.all([inbox.place(pa, ['race.txt']), inbox.place(pb, ['race.txt'])])).map((p) => p.path);
      expect(new Set(names)).toEqual(new Set(['race.txt', 'race (1).txt']));
      const landed = await Promise.all(names.map((name) => fs.readFile(path.join(inbox.root, name))));
      expect(landed.map((x) => x.toString('hex')).sort()).toEqual([a.toString('hex'), b.toString('hex')].sort());
    });

    it('under overwrite, replaces the existing file', async () => {
      const inbox = await openInbox('overwrite');
      await fs.writeFile(path.join(inbox.root, 'a.txt'), content(500, 29));
      const bytes = content(100, 30);
      expect(await inbox.place(await stage(inbox, bytes), ['a.txt'])).toBe('a.txt');
      expect((await fs.readFile(path.join(inbox.root, 'a.txt'))).equals(bytes)).toBe(true);
      expect(await fs.readdir(inbox.root)).toEqual(expect.not.arrayContaining(['a (1).txt']));
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
    });

    it('under reject, places a new name, but throws CONFLICT when the name appeared meanwhile and keeps both files', async () => {
      const inbox = await openInbox('reject');
      const fresh = content(10, 31);
      expect(await inbox.place(await stage(inbox, fresh), ['fresh.txt'])).toBe('fresh.txt');

      const bytes = content(100, 32);
      const partial = await stage(inbox, bytes);
      expect(await inbox.inspect(['a.txt'], partial.id)).toEqual({ kind: 'free' });
      const intruder = content(100, 33);
      await fs.writeFile(path.join(inbox.root, 'a.txt'), intruder);
      await expectFtError(inbox.place(partial, ['a.txt']), 'CONFLICT');
      expect((await fs.readFile(path.join(inbox.root, 'a.txt'))).equals(intruder)).toBe(true);
      // The verified upload is not lost: it is still in the partial folder.
      expect((await fs.readFile(partial.dataPath)).equals(bytes)).toBe(true);
    });

    describe('symbolic links and files on the way', () => {
      async function outsideDir(): Promise<string> {
        const outside = path.join(base, 'outside');
        await fs.mkdir(outside, { recursive: true });
        await fs.writeFile(path.join(outside, 'target.txt'), 'precious');
        return outside;
      }

      it.each(['rename', 'overwrite', 'reject'] as const)('refuses a symbolic link as a parent folder with UNSAFE_PATH (%s)', async (policy) => {
        const inbox = await openInbox(policy);
        const outside = await outsideDir();
        await fs.symlink(outside, path.join(inbox.root, 'link'));
        const bytes = content(10, 40);
        await expectFtError(inbox.inspect(['link', 'x.txt'], await idOf(bytes)), 'UNSAFE_PATH');
        await expectFtError(inbox.place(await stage(inbox, bytes), ['link', 'x.txt']), 'UNSAFE_PATH');
        await expectFtError(inbox.place(await stage(inbox, content(10, 41)), ['link', 'deeper', 'x.txt']), 'UNSAFE_PATH');
        expect((await fs.readdir(outside)).sort()).toEqual(['target.txt']);
      });

      it('refuses a symbolic link deeper in the path with UNSAFE_PATH', async () => {
        const inbox = await openInbox('rename');
        const outside = await outsideDir();
        await fs.mkdir(path.join(inbox.root, 'real'));
        await fs.symlink(outside, path.join(inbox.root, 'real', 'link'));
        await expectFtError(inbox.inspect(['real', 'link', 'x.txt'], await idOf(content(10, 42))), 'UNSAFE_PATH');
        await expectFtError(inbox.place(await stage(inbox, content(10, 42)), ['real', 'link', 'x.txt']), 'UNSAFE_PATH');
        expect((await fs.readdir(outside)).sort()).toEqual(['target.txt']);
      });

      it.each(['rename', 'overwrite', 'reject'] as const)('refuses a symbolic link at the final name with UNSAFE_PATH on inspect (%s)', async (policy) => {
        const inbox = await openInbox(policy);
        const outside = await outsideDir();
        await fs.symlink(path.join(outside, 'target.txt'), path.join(inbox.root, 'x.txt'));
        await expectFtError(inbox.inspect(['x.txt'], await idOf(content(8, 43))), 'UNSAFE_PATH');
        // Even when the link points at identical content.
        await expectFtError(inbox.inspect(['x.txt'], await idOf(Buffer.from('precious'))), 'UNSAFE_PATH');
      });

      it('refuses to place over a symbolic link under overwrite, leaving its target alone', async () => {
        const inbox = await openInbox('overwrite');
        const outside = await outsideDir();
        await fs.symlink(path.join(outside, 'target.txt'), path.join(inbox.root, 'x.txt'));
        await expectFtError(inbox.place(await stage(inbox, content(8, 44)), ['x.txt']), 'UNSAFE_PATH');
        expect(await fs.readFile(path.join(outside, 'target.txt'), 'utf8')).toBe('precious');
        expect((await fs.lstat(path.join(inbox.root, 'x.txt'))).isSymbolicLink()).toBe(true);
      });

      it('never writes through a symbolic link at the final name under rename or reject', async () => {
        const outside = await outsideDir();
        const renaming = await openInbox('rename', path.join(base, 'inbox-r'));
        await fs.symlink(path.join(outside, 'target.txt'), path.join(renaming.root, 'x.txt'));
        expect(await renaming.place(await stage(renaming, content(8, 45)), ['x.txt'])).toBe('x (1).txt');

        const rejecting = await openInbox('reject', path.join(base, 'inbox-j'));
        await fs.symlink(path.join(outside, 'target.txt'), path.join(rejecting.root, 'x.txt'));
        await expectFtError(rejecting.place(await stage(rejecting, content(8, 46)), ['x.txt']), 'CONFLICT');

        expect(await fs.readFile(path.join(outside, 'target.txt'), 'utf8')).toBe('precious');
      });

      it('refuses a file where a folder is needed with CONFLICT', async () => {
        const inbox = await openInbox('rename');
        await fs.writeFile(path.join(inbox.root, 'a'), 'i am a file');
        await expectFtError(inbox.inspect(['a', 'b.txt'], await idOf(content(10, 47))), 'CONFLICT');
        await expectFtError(inbox.place(await stage(inbox, content(10, 47)), ['a', 'b.txt']), 'CONFLICT');
        await expectFtError(inbox.place(await stage(inbox, content(10, 48)), ['a', 'b', 'c.txt']), 'CONFLICT');
        expect(await fs.readFile(path.join(inbox.root, 'a'), 'utf8')).toBe('i am a file');
      });
    });
  });

  describe('PartialStore.expire', () => {
    it('removes only old files named like partials, only in the partial folder', async () => {
      const inbox = await openInbox();
      const dir = inbox.partials.dir;
      const now = Date.now();
      const old = new Date(now - 2 * 3600_000);
      const ttl = 3600_000;
      const hex = '0123456789abcdef';

      const oldPart = `${hex}-10.part`;
      const oldMeta = `${hex}-10.json`;
      const oldPrivate = `${hex}-10~0badf00d.part`;
      const freshPart = `fedcba9876543210-20.part`;
      const lookalikes = [
        'notes.txt',
        `${hex.toUpperCase()}-10.part`,
        `${hex}-10.part.bak`,
        `x${hex}-10.part`,
        `${hex}-abc.part`,
        `${hex}-10.tmp`,
        `${hex}-10~nothex!.part`,
        `${hex}-10~0badf00d0.part`,
      ];
      for (const name of [oldPart, oldMeta, oldPrivate, freshPart, ...lookalikes]) await fs.writeFile(path.join(dir, name), 'data');
      // A folder named like a partial is not ours to delete.
      const folderLike = `1111111111111111-1.part`;
      await fs.mkdir(path.join(dir, folderLike));
      // Files named like partials outside the folder.
      const outsideInRoot = path.join(inbox.root, oldPart);
      await fs.writeFile(outsideInRoot, 'user data');
      await fs.mkdir(path.join(inbox.root, 'sub'));
      const outsideInSub = path.join(inbox.root, 'sub', oldPart);
      await fs.writeFile(outsideInSub, 'user data');

      for (const name of [oldPart, oldMeta, oldPrivate, ...lookalikes, folderLike]) await fs.utimes(path.join(dir, name), old, old);
      await fs.utimes(outsideInRoot, old, old);
      await fs.utimes(outsideInSub, old, old);

      const removed = await inbox.partials.expire(ttl, now);
      expect(removed.sort()).toEqual([oldMeta, oldPart, oldPrivate].sort());
      expect((await fs.readdir(dir)).sort()).toEqual([freshPart, folderLike, ...lookalikes].sort());
      expect(await fs.readFile(outsideInRoot, 'utf8')).toBe('user data');
      expect(await fs.readFile(outsideInSub, 'utf8')).toBe('user data');
    });

    it('keeps an old partial that is held right now', async () => {
      const inbox = await openInbox();
      const bytes = content(100, 50);
      const partial = await stage(inbox, bytes.subarray(0, 30) as Buffer);
      const old = new Date(Date.now() - 10 * 3600_000);
      await fs.utimes(partial.dataPath, old, old);
      expect(await inbox.partials.expire(3600_000)).toEqual([]);
      expect(await fs.readFile(partial.dataPath)).toHaveLength(30);
      partial.release();
      expect((await inbox.partials.expire(3600_000)).sort()).toEqual([`${partial.key}.part`]);
    });

    it('keeps an old private partial that is held right now', async () => {
      const inbox = await openInbox();
      const conn = {};
      const bytes = content(100, 51);
      const id = await idOf(bytes);
      const shared = await inbox.partials.acquire(id, 'a', conn);
      const copy = await inbox.partials.acquire(id, 'a', conn);
      await writeBody(copy!, bytes.subarray(0, 10) as Buffer);
      const old = new Date(Date.now() - 10 * 3600_000);
      await fs.utimes(copy!.dataPath, old, old);
      expect(await inbox.partials.expire(3600_000)).toEqual([]);
      expect(await fs.readFile(copy!.dataPath)).toHaveLength(10);
      shared!.release();
      copy!.release();
    });

    it('returns nothing when the partial folder is missing', async () => {
      const inbox = await openInbox();
      await fs.rm(inbox.partials.dir, { recursive: true });
      expect(await inbox.partials.expire(0)).toEqual([]);
    });
  });
});
