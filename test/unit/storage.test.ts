import { createHash } from 'node:crypto';
import { promises as nodeFs, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FtError } from '../../src/errors.js';
import { hashBytes } from '../../src/hashing.js';
import { BodyWriter } from '../../src/storage/local/body-writer.js';
import { fileSystemOf, nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { Inbox, type ConflictPolicy } from '../../src/storage/local/inbox.js';
import { PARTIAL_LIMITS, partialKey, PartialStore, type Partial, type UploadId } from '../../src/storage/local/partials.js';
import { SERVE_DEFAULTS } from '../../src/receiver/server.js';
import { OWNER_A, OWNER_B } from '../helpers/owners.js';
import { content, expectFtError } from '../contract/upload-store.contract.js';

const MiB = 1024 * 1024;
/** Over SMALL_BODY_BYTES: only uploads of more than 1 MiB are kept for resume. */
const RESUMABLE = MiB + 1;
const PEER = '192.0.2.1';

/** The full promises API, for test setup (symlink, rm, …) beyond the FileSystem slice ft uses. */
type FullFs = typeof nodeFs;

interface Backend {
  name: string;
  /** False: the inbox must use its path fallback even where /proc/self/fd works. */
  folderHandles?: boolean;
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
  {
    // What systems without /proc/self/fd get: paths checked by lstat, and a check after placement.
    name: 'a real temp dir without folder handles',
    folderHandles: false,
    async create() {
      const base = await nodeFs.mkdtemp(path.join(os.tmpdir(), 'ft-storage-test-'));
      return { fs: nodeFs, ft: nodeFileSystem, base, cleanup: () => nodeFs.rm(base, { recursive: true, force: true }) };
    },
  },
];



async function idOf(bytes: Buffer, filename = 'x', owner = OWNER_A): Promise<UploadId> {
  return { owner, filename, size: bytes.length, hash: await hashBytes(bytes) };
}

let staged = 0;

describe.each(backends)('storage contract on $name', (backend) => {
  let fs: FullFs;
  let ft: FileSystem;
  let base: string;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ fs, ft, base, cleanup } = await backend.create());
  });
  const opened: Inbox[] = [];
  afterEach(async () => {
    for (const inbox of opened.splice(0)) inbox.close();
    await cleanup();
  });

  const ftFs = (): FileSystem => ft;
  const openInbox = async (policy: ConflictPolicy = 'rename', dir = path.join(base, 'inbox')) => {
    const inbox = await Inbox.open(dir, ftFs(), policy, { folderHandles: backend.folderHandles });
    opened.push(inbox);
    return inbox;
  };

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
  async function stage(inbox: Inbox, bytes: Buffer, filename = `staged-${++staged}`): Promise<Partial> {
    // Each staged upload comes from its own connection.
    const partial = await inbox.partials.acquire(await idOf(bytes, filename), PEER);
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

    it('opens an existing inbox again without losing partials, and resumes them', async () => {
      const first = await openInbox();
      const bytes = content(RESUMABLE + 100, 1);
      const id = await idOf(bytes, 'kept.bin');
      const partial = await first.partials.acquire(id, PEER);
      await writeBody(partial!, bytes.subarray(0, 40) as Buffer);
      partial!.release();
      const again = await openInbox();
      expect(await fs.readdir(again.partials.dir)).toEqual(expect.arrayContaining([`${partialKey(id)}.part`]));
      expect(again.partials.count).toBe(1);
      expect(again.partials.countOf(PEER)).toBe(1); // the peer, from the metadata
      const resumed = await again.partials.acquire(id, PEER);
      expect(resumed!.offset).toBe(40);
      expect((await resumed!.hashPrefix()).prefixHash).toBe(await hashBytes(bytes.subarray(0, 40)));
    });

    it('refuses a partial folder that is a symbolic link', async () => {
      const dir = path.join(base, 'inbox');
      await fs.mkdir(path.join(base, 'elsewhere'), { recursive: true });
      await fs.mkdir(dir, { recursive: true });
      await fs.symlink(path.join(base, 'elsewhere'), path.join(dir, '.ft-partial'));
      await expectFtError(openInbox('rename', dir), 'UNSAFE_PATH');
    });
  });

  describe('PartialStore.acquire', () => {
    it('returns offset 0 for a new upload, keyed by owner, name and size, and writes its metadata only when the body starts', async () => {
      const inbox = await openInbox();
      // Only bodies streamed to disk (over 1 MiB) get a metadata file.
      const size = MiB + 1000;
      const id = await idOf(content(size, 2), 'docs/report.pdf');
      const before = Date.now();
      const partial = await inbox.partials.acquire(id, PEER);
      expect(partial).toBeDefined();
      expect(partial!.offset).toBe(0);
      expect(partial!.key).toBe(createHash('sha256').update(`${OWNER_A}\0docs/report.pdf\0${size}`).digest('hex').slice(0, 32));
      expect(partial!.dataPath).toBe(path.join(inbox.partials.dir, `${partial!.key}.part`));
      const metaPath = path.join(inbox.partials.dir, `${partial!.key}.json`);
      expect(await exists(metaPath)).toBe(false);
      expect(await exists(partial!.dataPath)).toBe(false);
      await (await partial!.openForWrite(0)).close();
      const meta = JSON.parse(await fs.readFile(metaPath, 'utf8'));
      expect(meta).toEqual({ v: 1, owner: OWNER_A, filename: 'docs/report.pdf', size, hash: id.hash, peer: PEER, createdAt: expect.any(String) });
      expect(Date.parse(meta.createdAt)).toBeGreaterThanOrEqual(before - 1000);
      expect(await exists(partial!.dataPath)).toBe(true);
      // Nothing but the two files: the temporary metadata was renamed over the .json.
      expect((await fs.readdir(inbox.partials.dir)).sort()).toEqual([`${partial!.key}.json`, `${partial!.key}.part`]);
    });

    it('takes a held upload over: the holder is revoked, the newer one waits for it to let go, then resumes what it kept', async () => {
      const inbox = await openInbox();
      const bytes = content(RESUMABLE + 100, 3);
      const id = await idOf(bytes, 'a');
      const first = await inbox.partials.acquire(id, PEER);
      await writeBody(first, bytes.subarray(0, 70) as Buffer);
      expect(first.revoked.aborted).toBe(false);
      let second: Partial | undefined;
      // The same name and size without a hash is the same upload.
      const taking = inbox.partials.acquire({ ...id, hash: undefined }, PEER).then((partial) => (second = partial));
      await vi.waitFor(() => expect(first.revoked.aborted).toBe(true));
      expect((first.revoked.reason as FtError).code).toBe('BUSY');
      // Another name is another upload: never waits.
      const other = await inbox.partials.acquire(await idOf(content(10, 3), 'b'), PEER);
      other.release();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(second).toBeUndefined();
      first.release();
      await taking;
      expect(second!.key).toBe(first.key);
      expect(second!.offset).toBe(70);
      expect(second!.revoked.aborted).toBe(false);
    });

    it('waits at most waitMs for a holder that never lets go, then says BUSY; a signal ends the wait sooner', async () => {
      const inbox = await openInbox();
      const id = await idOf(content(10, 4), 'held');
      const holder = await inbox.partials.acquire(id, PEER);
      await expectFtError(inbox.partials.acquire(id, PEER, { waitMs: 50 }), 'BUSY');
      const controller = new AbortController();
      const waiting = inbox.partials.acquire(id, PEER, { signal: controller.signal, waitMs: 60_000 });
      controller.abort();
      await expectFtError(waiting, 'BUSY');
      // Already aborted: BUSY at once.
      await expectFtError(inbox.partials.acquire(id, PEER, { signal: AbortSignal.abort() }), 'BUSY');
      holder.release();
      (await inbox.partials.acquire(id, PEER, { signal: AbortSignal.abort() })).release();
    });

    it('a newer waiter supersedes an older one (BUSY), and gets the upload once the holder lets go', async () => {
      const inbox = await openInbox();
      const id = await idOf(content(10, 5));
      const holder = await inbox.partials.acquire(id, PEER);
      const older = inbox.partials.acquire(id, PEER, { waitMs: 60_000 });
      const newer = inbox.partials.acquire(id, PEER, { waitMs: 60_000 });
      await expectFtError(older, 'BUSY');
      holder.release();
      const got = await newer;
      expect(got.key).toBe(holder.key);
      got.release();
    });

    it('two uploads of one key at once, within one connection or not: one after the other, never a private copy', async () => {
      const inbox = await openInbox();
      const bytes = content(RESUMABLE + 100, 14);
      const id = await idOf(bytes, 'a.bin');
      const first = await inbox.partials.acquire(id, PEER);
      const taking = inbox.partials.acquire(id, PEER);
      await vi.waitFor(() => expect(first.revoked.aborted).toBe(true));
      await writeBody(first, bytes.subarray(0, 60) as Buffer);
      first.release();
      const second = await taking;
      expect(second.dataPath).toBe(first.dataPath);
      expect(second.offset).toBe(60);
      await writeBody(second, bytes.subarray(60) as Buffer, 60);
      expect((await inbox.place(second, ['a.bin'])).path).toBe('a.bin');
      second.release();
      expect((await fs.readFile(path.join(inbox.root, 'a.bin'))).equals(bytes)).toBe(true);
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
      expect(inbox.partials.count).toBe(0);
    });

    it('a pinned holder (a commit in progress) is not revoked; the newer one waits for it', async () => {
      const inbox = await openInbox();
      const id = await idOf(content(10, 15));
      const first = await inbox.partials.acquire(id, PEER);
      const unpin = first.pin();
      const taking = inbox.partials.acquire(id, PEER, { waitMs: 60_000 });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(first.revoked.aborted).toBe(false);
      unpin();
      first.release();
      (await taking).release();
    });

    it('keeps nothing of an upload of at most 1 MiB: never offered for resume, deleted on release', async () => {
      const inbox = await openInbox();
      const bytes = content(MiB, 16);
      const id = await idOf(bytes, 'small.bin');
      const first = await inbox.partials.acquire(id, PEER);
      expect(first!.resumable).toBe(false);
      await writeBody(first!, bytes.subarray(0, 5000) as Buffer);
      first!.release();
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
      expect(inbox.partials.count).toBe(0);
      // One left by a crash is not offered either.
      await fs.writeFile(path.join(inbox.partials.dir, `${partialKey(id)}.part`), bytes.subarray(0, 5000));
      const second = await inbox.partials.acquire(id, PEER);
      expect(second!.offset).toBe(0);
      await writeBody(second!, bytes);
      expect((await fs.readFile(second!.dataPath)).equals(bytes)).toBe(true);
    });

    it('resumes from the bytes written before release, and hashPrefix hashes exactly that prefix', async () => {
      const inbox = await openInbox();
      const bytes = content(MiB + 5000, 6);
      const id = await idOf(bytes, 'big.bin');
      const first = await inbox.partials.acquire(id, PEER);
      await writeBody(first!, bytes.subarray(0, 1234) as Buffer);
      const metaPath = path.join(inbox.partials.dir, `${first!.key}.json`);
      const metaBefore = await fs.readFile(metaPath, 'utf8');
      first!.release();

      const second = await inbox.partials.acquire(id, PEER);
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

    it('starts at 0 when the metadata says the partial holds another content; resumes when the hash matches or one is unknown', async () => {
      const inbox = await openInbox();
      const bytes = content(RESUMABLE + 100, 62);
      const other = content(RESUMABLE + 100, 63);
      const leave = async (id: UploadId) => {
        const partial = await inbox.partials.acquire(id, PEER);
        await writeBody(partial!, bytes.subarray(0, 200) as Buffer);
        partial!.release();
        return partial!;
      };
      // Left with a hash; asked again by a header without one, and with the same one: resumed.
      const left = await leave(await idOf(bytes, 'v.bin'));
      const hashless = await inbox.partials.acquire({ ...(await idOf(bytes, 'v.bin')), hash: undefined }, PEER);
      expect(hashless!.offset).toBe(200);
      hashless!.release();
      const same = await inbox.partials.acquire(await idOf(bytes, 'v.bin'), PEER);
      expect(same!.offset).toBe(200);
      same!.release();
      // The same name and size with another hash: the file changed; what was kept is discarded.
      const changed = await inbox.partials.acquire(await idOf(other, 'v.bin'), PEER);
      expect(changed!.key).toBe(left.key);
      expect(changed!.offset).toBe(0);
      expect(await exists(left.dataPath)).toBe(false);
      expect(await exists(left.metaPath)).toBe(false);
      changed!.release();
      // Left without a hash (it followed the body): any header of that name and size resumes it.
      await leave({ ...(await idOf(bytes, 'w.bin')), hash: undefined });
      const later = await inbox.partials.acquire(await idOf(other, 'w.bin'), PEER);
      expect(later!.offset).toBe(200);
    });

    it.each([
      ['empty (torn by a power cut)', ''],
      ['cut short', '{"v":1,"owner":"'],
      ['not an object', '[1,2,3]\n'],
      ['of another version', JSON.stringify({ v: 2, owner: OWNER_A, filename: 'm.bin', size: 2 * MiB, peer: PEER, createdAt: 'x' })],
      ['of another upload', JSON.stringify({ v: 1, owner: OWNER_B, filename: 'm.bin', size: 2 * MiB, peer: PEER, createdAt: 'x' })],
      ['over 4 KiB', JSON.stringify({ v: 1, owner: OWNER_A, filename: 'm.bin', size: 2 * MiB, peer: PEER, createdAt: 'x', pad: 'p'.repeat(5000) })],
    ])('treats metadata that is %s as absent: the data resumes, and the metadata is written anew', async (_what, text) => {
      const first = await openInbox();
      const bytes = content(2 * MiB, 64);
      const id = await idOf(bytes, 'm.bin');
      const partial = await first.partials.acquire(id, PEER);
      await writeBody(partial!, bytes.subarray(0, 400) as Buffer);
      partial!.release();
      await fs.writeFile(partial!.metaPath, text);
      // Counted at start (a peer unknown), then resumed as usual.
      const inbox = await openInbox();
      expect(inbox.partials.count).toBe(1);
      const again = await inbox.partials.acquire(id, PEER);
      expect(again!.offset).toBe(400);
      await (await again!.openForWrite(400)).close();
      expect(JSON.parse(await fs.readFile(partial!.metaPath, 'utf8'))).toMatchObject({ v: 1, owner: OWNER_A, filename: 'm.bin', peer: PEER });
      again!.release();
      // Started again from 0, it is replaced too.
      await fs.writeFile(partial!.metaPath, text);
      const fresh = await inbox.partials.acquire(id, PEER);
      await (await fresh!.openForWrite(0)).close();
      expect(JSON.parse(await fs.readFile(partial!.metaPath, 'utf8'))).toMatchObject({ v: 1, owner: OWNER_A, size: bytes.length });
    });

    it('gives a prefix hash of an empty hasher when nothing is held', async () => {
      const inbox = await openInbox();
      const partial = await inbox.partials.acquire(await idOf(content(10, 7)), PEER);
      const { prefixHash } = await partial!.hashPrefix();
      expect(prefixHash).toBe(await hashBytes(new Uint8Array(0)));
    });

    it('discards a partial larger than the announced size', async () => {
      const inbox = await openInbox();
      const bytes = content(RESUMABLE + 100, 8);
      const id = await idOf(bytes);
      const dataPath = path.join(inbox.partials.dir, `${partialKey(id)}.part`);
      await fs.writeFile(dataPath, Buffer.concat([bytes, Buffer.from('extra')]));
      const partial = await inbox.partials.acquire(id, PEER);
      expect(partial!.offset).toBe(0);
      expect(await exists(dataPath)).toBe(false);
    });

    it('keeps a partial exactly as large as the announced size (offset = size)', async () => {
      const inbox = await openInbox();
      const bytes = content(RESUMABLE + 100, 9);
      const id = await idOf(bytes);
      await fs.writeFile(path.join(inbox.partials.dir, `${partialKey(id)}.part`), bytes);
      const partial = await inbox.partials.acquire(id, PEER);
      expect(partial!.offset).toBe(bytes.length);
      expect((await partial!.hashPrefix()).prefixHash).toBe(id.hash);
    });

    it('openForWrite(from) cuts off what lies beyond `from`, openForWrite(0) starts over', async () => {
      const inbox = await openInbox();
      const bytes = content(300, 10);
      const partial = await inbox.partials.acquire(await idOf(bytes), PEER);
      await writeBody(partial!, content(200, 11)); // wrong bytes
      await writeBody(partial!, bytes.subarray(0, 150) as Buffer, 0);
      expect((await fs.readFile(partial!.dataPath)).equals(bytes.subarray(0, 150))).toBe(true);
      await writeBody(partial!, content(100, 12), 150); // 150..250 wrong
      await writeBody(partial!, bytes.subarray(100) as Buffer, 100); // rewrite from 100
      expect((await fs.readFile(partial!.dataPath)).equals(bytes)).toBe(true);
    });

    it('writeRest writes a small body from 0 or from an offset, in one go', async () => {
      const inbox = await openInbox();
      const bytes = content(RESUMABLE + 50, 17);
      const partial = await inbox.partials.acquire(await idOf(bytes), PEER);
      let file = partial!.writeRest(0, [bytes.subarray(0, 1000) as Buffer, bytes.subarray(1000, 2000) as Buffer]);
      await file.sync();
      await file.close();
      file = partial!.writeRest(1500, [bytes.subarray(1500) as Buffer]);
      await file.close();
      expect((await fs.readFile(partial!.dataPath)).equals(bytes)).toBe(true);
    });

    it('discard removes the data and the metadata', async () => {
      const inbox = await openInbox();
      const bytes = content(RESUMABLE + 50, 13);
      const partial = await stage(inbox, bytes);
      expect(await fs.readdir(inbox.partials.dir)).toHaveLength(2);
      await partial.discard();
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
      await partial.discard(); // twice is fine
    });
  });

  describe('folder handles', () => {
    it('walks through folder handles exactly where /proc/self/fd reaches into folders', async () => {
      const inbox = await openInbox();
      const expected = backend.name === 'a real temp dir' && process.platform === 'linux' ? 'handles' : 'paths';
      expect(inbox.folderMode).toBe(expected);
    });
  });

  describe('who else can write to the inbox', () => {
    const posix = process.platform !== 'win32' && process.getuid !== undefined;

    const modes = (list: number[]) => list.map((mode) => [mode.toString(8).padStart(4, '0'), mode] as const);

    it.runIf(posix).each(modes([0o777, 0o775, 0o757, 0o770, 0o722]))('refuses an existing inbox of mode %s, saying how to fix it', async (_, mode) => {
      const dir = path.join(base, 'shared');
      await fs.mkdir(dir);
      await fs.chmod(dir, mode);
      const error = await expectFtError(openInbox('rename', dir), 'UNSAFE_PATH');
      expect(error.message).toContain(`chmod go-w ${dir}`);
      expect(error.message).toContain('sticky');
      expect(error.message).not.toContain('\n');
    });

    it.runIf(posix).each(modes([0o1777, 0o1775, 0o755, 0o700]))('serves an inbox of mode %s (sticky, or writable only by its owner)', async (_, mode) => {
      const dir = path.join(base, 'fine');
      await fs.mkdir(dir);
      await fs.chmod(dir, mode);
      const inbox = await openInbox('rename', dir);
      expect(await inbox.inspect(['a.txt'])).toEqual({ kind: 'free' });
    });

    it.runIf(posix && process.getuid?.() === 0 && backend.name !== 'memfs')('refuses an inbox owned by another user', async () => {
      const dir = path.join(base, 'theirs');
      await fs.mkdir(dir);
      await fs.chmod(dir, 0o755);
      await fs.chown(dir, 4242, 4242);
      const error = await expectFtError(openInbox('rename', dir), 'UNSAFE_PATH');
      expect(error.message).toMatch(/belongs to another user \(uid 4242\).*chown/);
    });

    it.runIf(posix)('creates a missing inbox, and the folders of placed files, writable only by their owner', async () => {
      const inbox = await openInbox('rename', path.join(base, 'new-inbox'));
      expect((await fs.lstat(inbox.root)).mode & 0o022).toBe(0);
      await inbox.place(await stage(inbox, content(10, 1)), ['made', 'here', 'a.txt']);
      expect((await fs.lstat(path.join(inbox.root, 'made'))).mode & 0o022).toBe(0);
      expect((await fs.lstat(path.join(inbox.root, 'made', 'here'))).mode & 0o022).toBe(0);
    });
  });

  describe('the inbox or .ft-partial deleted or replaced while serving', () => {
    it('creates the inbox and its partial folder again when the inbox was deleted', async () => {
      const inbox = await openInbox();
      await inbox.place(await stage(inbox, content(10, 1)), ['before.txt']);
      await fs.rm(inbox.root, { recursive: true });
      expect(await inbox.inspect(['sub', 'after.txt'])).toEqual({ kind: 'free' });
      expect((await fs.lstat(inbox.partials.dir)).isDirectory()).toBe(true);
      const bytes = content(10, 2);
      expect((await inbox.place(await stage(inbox, bytes), ['sub', 'after.txt'])).path).toBe('sub/after.txt');
      expect((await fs.readFile(path.join(inbox.root, 'sub', 'after.txt'))).equals(bytes)).toBe(true);
    });

    it('creates .ft-partial again when it was deleted', async () => {
      const inbox = await openInbox();
      await fs.rm(inbox.partials.dir, { recursive: true });
      expect(await inbox.inspect(['a.txt'])).toEqual({ kind: 'free' });
      const bytes = content(10, 3);
      expect((await inbox.place(await stage(inbox, bytes), ['a.txt'])).path).toBe('a.txt');
      expect((await fs.readFile(path.join(inbox.root, 'a.txt'))).equals(bytes)).toBe(true);
    });

    it.each(['a symbolic link', 'another folder', 'a file'] as const)('refuses with UNSAFE_PATH, on one line, an inbox replaced by %s', async (what) => {
      const inbox = await openInbox();
      const partial = await stage(inbox, content(10, 4));
      const outside = path.join(base, 'outside');
      await fs.mkdir(outside);
      await fs.rename(inbox.root, path.join(base, 'moved-inbox'));
      if (what === 'a symbolic link') await fs.symlink(outside, inbox.root);
      else if (what === 'another folder') await fs.mkdir(inbox.root);
      else await fs.writeFile(inbox.root, 'a file');
      for (const attempt of [inbox.inspect(['a.txt']), inbox.place(partial, ['a.txt'])]) {
        const error = await expectFtError(attempt, 'UNSAFE_PATH');
        expect(error.message).toContain(`replaced by ${what}`);
        expect(error.message).not.toContain('\n');
        expect(error.message).not.toContain(base);
      }
      expect(await fs.readdir(outside)).toEqual([]);
      expect(inbox.statPlaced('a.txt')).toBeUndefined();
    });
  });

  describe('partial quotas', () => {
    /** An upload of `peer` left with a few bytes and released; returns its partial. */
    async function leave(inbox: Inbox, name: string, peer: string, owner = OWNER_A): Promise<Partial> {
      const partial = await inbox.partials.acquire(await idOf(content(RESUMABLE, name.length), name, owner), peer);
      await writeBody(partial!, Buffer.from(`bytes of ${name}`));
      partial!.release();
      return partial!;
    }

    it('keeps at most maxPartialsPerPeer per peer: the peer\'s oldest unheld partial makes room, others\' are untouched', async () => {
      const inbox = await Inbox.open(path.join(base, 'inbox'), ftFs(), 'rename', { partialLimits: { maxPartialsPerPeer: 2, maxPartials: 10 } });
      const theirs = await leave(inbox, 'theirs', '192.0.2.50', OWNER_B);
      const [a1, a2] = [await leave(inbox, 'a1', PEER), await leave(inbox, 'a2', PEER)];
      expect(inbox.partials.countOf(PEER)).toBe(2);
      // Resuming a1 makes it the most recently used: a2 is the oldest now.
      (await inbox.partials.acquire(await idOf(content(RESUMABLE, 2), 'a1'), PEER))!.release();
      const a3 = await leave(inbox, 'a3', PEER);
      expect(await exists(a2.dataPath)).toBe(false);
      expect(await exists(a2.metaPath)).toBe(false);
      for (const kept of [a1, a3, theirs]) expect(await exists(kept.dataPath)).toBe(true);
      expect(inbox.partials.countOf(PEER)).toBe(2);
      expect(inbox.partials.count).toBe(3);
    });

    it('refuses with BUSY, rather than exceed a peer\'s cap, when all its partials are in use; other peers go on', async () => {
      const inbox = await Inbox.open(path.join(base, 'inbox'), ftFs(), 'rename', { partialLimits: { maxPartialsPerPeer: 2, maxPartials: 10 } });
      const held = [
        await inbox.partials.acquire(await idOf(content(RESUMABLE, 1), 'h1'), PEER),
        await inbox.partials.acquire(await idOf(content(RESUMABLE, 2), 'h2'), PEER),
      ];
      expect(held.every((p) => p !== undefined)).toBe(true);
      await expectFtError(inbox.partials.acquire(await idOf(content(RESUMABLE, 3), 'h3'), PEER), 'BUSY');
      // Small uploads are not counted: they are never kept.
      expect(await inbox.partials.acquire(await idOf(content(100, 4), 'small'), PEER)).toBeDefined();
      expect(await inbox.partials.acquire(await idOf(content(RESUMABLE, 5), 'other'), '192.0.2.77')).toBeDefined();
      held[0]!.release(); // nothing was written: it no longer counts
      expect(await inbox.partials.acquire(await idOf(content(RESUMABLE, 3), 'h3'), PEER)).toBeDefined();
    });

    it('keeps at most maxPartials in all: among peers holding one each, the oldest unheld partial makes room', async () => {
      const inbox = await Inbox.open(path.join(base, 'inbox'), ftFs(), 'rename', { partialLimits: { maxPartialsPerPeer: 10, maxPartials: 3 } });
      const oldest = await leave(inbox, 'old', '192.0.2.60');
      const kept = [await leave(inbox, 'k1', PEER), await leave(inbox, 'k2', '192.0.2.61')];
      const newest = await leave(inbox, 'new', '192.0.2.62');
      expect(await exists(oldest.dataPath)).toBe(false);
      for (const partial of [...kept, newest]) expect(await exists(partial.dataPath)).toBe(true);
      expect(inbox.partials.count).toBe(3);
      // All held: BUSY for the next, whoever asks.
      const holding = await Promise.all(['k1', 'k2', 'new'].map(async (name) => inbox.partials.acquire(await idOf(content(RESUMABLE, name.length), name), PEER)));
      expect(holding.every((p) => p !== undefined)).toBe(true);
      await expectFtError(inbox.partials.acquire(await idOf(content(RESUMABLE, 9), 'more'), '192.0.2.63'), 'BUSY');
    });

    it('at the total cap, the peer holding the most gives up its oldest unheld partial: a peer that left one keeps it and resumes', async () => {
      // Finding 6 at a small scale: attackers fill the folder and keep asking; the victim's partial is the oldest.
      const inbox = await Inbox.open(path.join(base, 'inbox'), ftFs(), 'rename', { partialLimits: { maxPartials: 8, maxPartialsPerPeer: 4 } });
      const victimPeer = '192.0.2.10';
      const victimBytes = content(RESUMABLE, 10);
      const victimId = await idOf(victimBytes, 'victim', OWNER_B);
      const half = victimBytes.subarray(0, 4096);
      const victim = await inbox.partials.acquire(victimId, victimPeer);
      await writeBody(victim!, half);
      victim!.release();
      const [first, second] = ['192.0.2.66', '192.0.2.67'];
      // Each attacker also holds two headers without bodies all along.
      const headers = [];
      for (const [index, peer] of [first, first, second, second].entries()) {
        headers.push(await inbox.partials.acquire(await idOf(content(RESUMABLE, 100 + index), `held-${index}`, OWNER_A), peer));
      }
      expect(headers.every((p) => p !== undefined)).toBe(true);
      const firstOldest = await leave(inbox, 'first-0', first);
      const secondOldest = await leave(inbox, 'second-0', second);
      await leave(inbox, 'first-1', first);
      expect(inbox.partials.count).toBe(8);
      // The second asks at the total cap: the first holds more, so the first's oldest unheld one goes.
      await leave(inbox, 'second-1', second);
      expect(await exists(firstOldest.dataPath)).toBe(false);
      expect(await exists(secondOldest.dataPath)).toBe(true);
      expect(await exists(victim!.dataPath)).toBe(true);
      // Both keep asking, in turn, with new uploads left behind.
      for (let round = 0; round < 12; round++) {
        await leave(inbox, `round-${round}`, round % 2 === 0 ? first : second);
        expect(inbox.partials.count).toBe(8);
        expect(inbox.partials.countOf(victimPeer)).toBe(1);
      }
      expect(await exists(victim!.dataPath)).toBe(true);
      // Anyone else still gets room (from an attacker's), and the victim resumes where it stopped.
      const newcomer = await inbox.partials.acquire(await idOf(content(RESUMABLE, 11), 'newcomer', OWNER_B), '192.0.2.11');
      expect(newcomer).toBeDefined();
      expect(inbox.partials.countOf(victimPeer)).toBe(1);
      const resumed = await inbox.partials.acquire(victimId, victimPeer);
      expect(resumed).toBeDefined();
      expect(resumed!.offset).toBe(half.length);
      expect((await resumed!.hashPrefix()).prefixHash).toBe(await hashBytes(half));
      for (const held of [...headers, newcomer, resumed]) held!.release();
    });

    it('at the total cap, of peers holding as many, the least recently used one gives up a partial; a smaller peer only when nothing else can', async () => {
      const inbox = await Inbox.open(path.join(base, 'inbox'), ftFs(), 'rename', { partialLimits: { maxPartials: 5, maxPartialsPerPeer: 5 } });
      const small = await leave(inbox, 'small', '192.0.2.20');
      const [b1, c1, b2, c2] = [
        await leave(inbox, 'b1', '192.0.2.21'),
        await leave(inbox, 'c1', '192.0.2.22'),
        await leave(inbox, 'b2', '192.0.2.21'),
        await leave(inbox, 'c2', '192.0.2.22'),
      ];
      // Two peers hold two each: the one whose oldest was used least recently gives it up.
      const asker = '192.0.2.23';
      const held = [await inbox.partials.acquire(await idOf(content(RESUMABLE, 30), 'a1'), asker)];
      expect(await exists(b1.dataPath)).toBe(false);
      held.push(await inbox.partials.acquire(await idOf(content(RESUMABLE, 31), 'a2'), asker));
      expect(await exists(c1.dataPath)).toBe(false);
      for (const kept of [small, b2, c2]) expect(await exists(kept.dataPath)).toBe(true);
      // The asker's own are all held: the others, one each, are all that can go; the least recently used first.
      held.push(await inbox.partials.acquire(await idOf(content(RESUMABLE, 32), 'a3'), asker));
      expect(await exists(small.dataPath)).toBe(false);
      expect(await exists(b2.dataPath)).toBe(true);
      expect(held.every((p) => p !== undefined)).toBe(true);
      expect(inbox.partials.count).toBe(5);
      for (const partial of held) partial!.release();
    });

    it('counts the partials on disk at start, deleting the oldest beyond the caps', async () => {
      const dir = path.join(base, 'inbox');
      const first = await Inbox.open(dir, ftFs(), 'rename', { partialLimits: { maxPartials: 100 } });
      const left: Partial[] = [];
      for (const [index, peer] of [PEER, PEER, PEER, PEER, '192.0.2.70'].entries()) {
        left.push(await leave(first, `f${index}`, peer));
        const when = new Date(Date.now() - (10 - index) * 60_000); // oldest first
        await fs.utimes(left.at(-1)!.dataPath, when, when);
      }
      const again = await Inbox.open(dir, ftFs(), 'rename', { partialLimits: { maxPartials: 4, maxPartialsPerPeer: 2 } });
      // Five over a total of four: the oldest goes; then PEER's oldest, one over its two.
      expect(await Promise.all(left.map((p) => exists(p.dataPath)))).toEqual([false, false, true, true, true]);
      expect(await Promise.all(left.map((p) => exists(p.metaPath)))).toEqual([false, false, true, true, true]);
      expect(again.partials.count).toBe(3);
      expect(again.partials.countOf(PEER)).toBe(2);
      expect(again.partials.countOf('192.0.2.70')).toBe(1);
    });

    it('counts an IPv6 peer by its /64', async () => {
      const inbox = await Inbox.open(path.join(base, 'inbox'), ftFs(), 'rename', { partialLimits: { maxPartialsPerPeer: 2 } });
      const first = await leave(inbox, 'v1', '2001:db8:1:2::1');
      await leave(inbox, 'v2', '2001:db8:1:2:aaaa::2');
      await leave(inbox, 'v3', '2001:0db8:0001:0002:ffff:ffff:ffff:ffff');
      expect(await exists(first.dataPath)).toBe(false);
      expect(inbox.partials.countOf('2001:db8:1:2::99')).toBe(2);
      await leave(inbox, 'v4', '2001:db8:1:3::1');
      expect(inbox.partials.countOf('2001:db8:1:3::1')).toBe(1);
    });

    it('defaults to 8192 in all, so what 64 connections can hold in use (64 waiting and 32 being placed, each) never fills it, and 64 per peer', () => {
      expect(PARTIAL_LIMITS).toEqual({ maxPartials: 8192, maxPartialsPerPeer: 64 });
      expect(PARTIAL_LIMITS.maxPartials).toBeGreaterThanOrEqual(SERVE_DEFAULTS.maxConnections * (64 + 32));
      expect(new PartialStore('/x', ftFs()).limits).toEqual({ maxPartials: 8192, maxPartialsPerPeer: 64 });
    });

    it('rejects caps that are not whole numbers of at least 1', () => {
      for (const bad of [0, -1, 1.5, Number.NaN]) {
        expect(() => new PartialStore('/x', ftFs(), { maxPartials: bad })).toThrow(FtError);
        expect(() => new PartialStore('/x', ftFs(), { maxPartialsPerPeer: bad })).toThrow(FtError);
      }
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
      expect(await inbox.inspect(['new', 'dir', 'a.txt'])).toEqual({ kind: 'free' });
    });

    it('under rename, refuses nothing a header could probe with: taken names, files and links where folders are needed', async () => {
      const inbox = await openInbox('rename');
      await putFile(inbox, 'a.txt', content(100, 3));
      await putFile(inbox, 'file', content(4, 3));
      await fs.mkdir(path.join(base, 'outside'));
      await fs.symlink(path.join(base, 'outside'), path.join(inbox.root, 'link'));
      await fs.symlink(path.join(base, 'outside', 'x'), path.join(inbox.root, 'x.txt'));
      for (const name of ['a.txt', 'file/x', 'file/deeper/x', 'link/x', 'x.txt', 'missing/x']) {
        expect(await inbox.inspect(name.split('/'))).toEqual({ kind: 'free' });
      }
    });

    it('under reject, says conflict for any taken name, whatever its content', async () => {
      const inbox = await openInbox('reject');
      await putFile(inbox, 'a.txt', content(100, 3));
      const taken = await inbox.inspect(['a.txt']);
      expect(taken.kind).toBe('conflict');
      if (taken.kind === 'conflict') expect(taken.reason).toContain('a.txt');
      await fs.mkdir(path.join(inbox.root, 'folder'));
      expect((await inbox.inspect(['folder'])).kind).toBe('conflict');
    });

    it('under overwrite, says free for a regular file but conflict for a folder', async () => {
      const inbox = await openInbox('overwrite');
      await putFile(inbox, 'a.txt', content(100, 5));
      expect(await inbox.inspect(['a.txt'])).toEqual({ kind: 'free' });
      await fs.mkdir(path.join(inbox.root, 'folder'));
      expect((await inbox.inspect(['folder'])).kind).toBe('conflict');
    });

    it.each(['overwrite', 'reject'] as const)('under %s, refuses a file where a folder is needed with CONFLICT', async (policy) => {
      const inbox = await openInbox(policy);
      await putFile(inbox, 'a', content(4, 5));
      await expectFtError(inbox.inspect(['a', 'b.txt']), 'CONFLICT');
    });

    it('under rename, says free even when the name and every numbered variant are taken (see inbox-variants.test.ts)', async () => {
      const inbox = await openInbox('rename');
      await fs.mkdir(path.join(inbox.root, 'full'));
      const names = ['n.txt', ...Array.from({ length: 999 }, (_, i) => `n (${i + 1}).txt`)];
      for (const name of names) await fs.writeFile(path.join(inbox.root, 'full', name), '');
      expect(await inbox.inspect(['full', 'n.txt'])).toEqual({ kind: 'free' });
    });
  });

  describe('Inbox.place', () => {
    it('moves the partial to its name, creating folders, removes the partial files, and gives the final identity', async () => {
      const inbox = await openInbox('rename');
      const bytes = content(2000, 20);
      const partial = await stage(inbox, bytes, 'a/b/c.bin');
      const placed = await inbox.place(partial, ['a', 'b', 'c.bin']);
      expect(placed.path).toBe('a/b/c.bin');
      expect(placed.deduplicated).toBe(false);
      const file = path.join(inbox.root, 'a', 'b', 'c.bin');
      expect((await fs.readFile(file)).equals(bytes)).toBe(true);
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
      // Taken after the partial's link was removed: it still describes the file exactly.
      const stat = await fs.lstat(file);
      expect(placed.identity).toEqual({ dev: stat.dev, ino: stat.ino, size: 2000, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs });
      expect(inbox.statPlaced('a/b/c.bin')).toEqual(placed.identity);
    });

    it("under rename, keeps the existing different file and uses 'name (1).ext', then 'name (2).ext'", async () => {
      const inbox = await openInbox('rename');
      const original = content(100, 21);
      await fs.mkdir(path.join(inbox.root, 'docs'));
      await fs.writeFile(path.join(inbox.root, 'docs', 'a.txt'), original);

      const first = content(100, 22);
      expect((await inbox.place(await stage(inbox, first), ['docs', 'a.txt'])).path).toBe('docs/a (1).txt');
      const second = content(100, 23);
      expect((await inbox.place(await stage(inbox, second), ['docs', 'a.txt'])).path).toBe('docs/a (2).txt');

      expect((await fs.readFile(path.join(inbox.root, 'docs', 'a.txt'))).equals(original)).toBe(true);
      expect((await fs.readFile(path.join(inbox.root, 'docs', 'a (1).txt'))).equals(first)).toBe(true);
      expect((await fs.readFile(path.join(inbox.root, 'docs', 'a (2).txt'))).equals(second)).toBe(true);
    });

    it('under rename, does not store identical content twice: the name that holds it is the result', async () => {
      const inbox = await openInbox('rename');
      const bytes = content(700_000, 60); // more than one comparison block
      await fs.writeFile(path.join(inbox.root, 'a.bin'), content(700_000, 61)); // same size, other bytes
      await fs.writeFile(path.join(inbox.root, 'a (1).bin'), bytes);
      const before = await fs.lstat(path.join(inbox.root, 'a (1).bin'));
      const placed = await inbox.place(await stage(inbox, bytes), ['a.bin']);
      expect(placed).toEqual({
        path: 'a (1).bin',
        deduplicated: true,
        identity: { dev: before.dev, ino: before.ino, size: bytes.length, mtimeMs: before.mtimeMs, ctimeMs: before.ctimeMs },
      });
      expect((await fs.readdir(inbox.root)).sort()).toEqual(['.ft-partial', 'a (1).bin', 'a.bin']);
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
    });

    it('under rename, compares every byte: a difference in the last byte is another file', async () => {
      const inbox = await openInbox('rename');
      const bytes = content(300_000, 62);
      const almost = Buffer.from(bytes);
      almost[almost.length - 1] ^= 1;
      await fs.writeFile(path.join(inbox.root, 'a.bin'), almost);
      const placed = await inbox.place(await stage(inbox, bytes), ['a.bin']);
      expect(placed).toMatchObject({ path: 'a (1).bin', deduplicated: false });
      expect((await fs.readFile(path.join(inbox.root, 'a (1).bin'))).equals(bytes)).toBe(true);
      expect((await fs.readFile(path.join(inbox.root, 'a.bin'))).equals(almost)).toBe(true);
    });

    it('under rename, never drops an upload for a file that changes while it is compared', async () => {
      const bytes = content(600_000, 63);
      const target = () => path.join(base, 'inbox', 'a.bin');
      // The existing file holds the same bytes when its first block is read, then changes in place.
      let reads = 0;
      const inner = ftFs();
      const changing: FileSystem = {
        ...inner,
        open: (async (file: string, ...rest: unknown[]) => {
          const handle = await (inner.open as (...args: unknown[]) => Promise<Awaited<ReturnType<FileSystem['open']>>>)(file, ...rest);
          if (!file.endsWith('a.bin')) return handle;
          const read = handle.read.bind(handle);
          (handle as { read: unknown }).read = async (...args: unknown[]) => {
            const result = await (read as (...a: unknown[]) => Promise<{ bytesRead: number }>)(...args);
            if (++reads === 1) {
              // Later than the first write by more than the file system's clock resolution.
              await new Promise((resolve) => setTimeout(resolve, 20));
              // Only bytes already compared change: the rest still matches.
              const writer = await fs.open(target(), 'r+');
              await writer.write(content(100, 64), 0, 100, 0);
              await writer.close();
            }
            return result;
          };
          return handle;
        }) as FileSystem['open'],
      };
      ft = changing;
      const inbox = await openInbox('rename');
      await fs.writeFile(target(), bytes);
      const placed = await inbox.place(await stage(inbox, bytes), ['a.bin']);
      expect(reads).toBeGreaterThan(0);
      expect(placed).toMatchObject({ path: 'a (1).bin', deduplicated: false });
      expect((await fs.readFile(path.join(inbox.root, 'a (1).bin'))).equals(bytes)).toBe(true);
    });

    it('under rename, puts a file whose folder is blocked by a file into the first variant folder, the same for every file', async () => {
      const inbox = await openInbox('rename');
      await fs.writeFile(path.join(inbox.root, 'name'), 'a file, not a folder');
      const x = content(10, 65);
      const y = content(10, 66);
      expect((await inbox.place(await stage(inbox, x), ['name', 'x'])).path).toBe('name (1)/x');
      expect((await inbox.place(await stage(inbox, y), ['name', 'sub', 'y'])).path).toBe('name (1)/sub/y');
      // A variant that is itself a file is passed over too.
      await fs.writeFile(path.join(inbox.root, 'other'), '');
      await fs.writeFile(path.join(inbox.root, 'other (1)'), '');
      expect((await inbox.place(await stage(inbox, content(10, 67)), ['other', 'z'])).path).toBe('other (2)/z');
      expect(await fs.readFile(path.join(inbox.root, 'name'), 'utf8')).toBe('a file, not a folder');
      expect((await fs.readFile(path.join(inbox.root, 'name (1)', 'sub', 'y'))).equals(y)).toBe(true);
    });

    it('under rename, numbers before the whole extension, and after a name without one', async () => {
      const inbox = await openInbox('rename');
      await fs.writeFile(path.join(inbox.root, 'archive.tar.gz'), 'old');
      await fs.writeFile(path.join(inbox.root, 'README'), 'old');
      await fs.writeFile(path.join(inbox.root, '.env'), 'old');
      expect((await inbox.place(await stage(inbox, content(10, 24)), ['archive.tar.gz'])).path).toBe('archive (1).tar.gz');
      expect((await inbox.place(await stage(inbox, content(10, 25)), ['README'])).path).toBe('README (1)');
      expect((await inbox.place(await stage(inbox, content(10, 26)), ['.env'])).path).toBe('.env (1)');
    });

    it('under rename, two placements racing for one name both land, under different names', async () => {
      const inbox = await openInbox('rename');
      const a = content(100, 27);
      const b = content(100, 28);
      const [pa, pb] = [await stage(inbox, a), await stage(inbox, b)];
      const names = (await Promise.all([inbox.place(pa, ['race.txt']), inbox.place(pb, ['race.txt'])])).map((placed) => placed.path);
      expect(new Set(names)).toEqual(new Set(['race.txt', 'race (1).txt']));
      const landed = await Promise.all(names.map((name) => fs.readFile(path.join(inbox.root, name))));
      expect(landed.map((x) => x.toString('hex')).sort()).toEqual([a.toString('hex'), b.toString('hex')].sort());
    });

    it('under overwrite, replaces the existing file, identical content too', async () => {
      const inbox = await openInbox('overwrite');
      await fs.writeFile(path.join(inbox.root, 'a.txt'), content(500, 29));
      const bytes = content(100, 30);
      const first = await stage(inbox, bytes);
      expect(await inbox.place(first, ['a.txt'])).toMatchObject({ path: 'a.txt', deduplicated: false });
      first.release();
      expect((await fs.readFile(path.join(inbox.root, 'a.txt'))).equals(bytes)).toBe(true);
      const placed = await inbox.place(await stage(inbox, bytes), ['a.txt']);
      expect(placed).toMatchObject({ path: 'a.txt', deduplicated: false });
      expect(inbox.statPlaced('a.txt')).toEqual(placed.identity);
      expect((await fs.readdir(inbox.root)).sort()).toEqual(['.ft-partial', 'a.txt']);
      expect(await fs.readdir(inbox.partials.dir)).toEqual([]);
    });

    it('under reject, places a new name, but throws CONFLICT when the name appeared meanwhile and keeps both files', async () => {
      const inbox = await openInbox('reject');
      const fresh = content(10, 31);
      expect((await inbox.place(await stage(inbox, fresh), ['fresh.txt'])).path).toBe('fresh.txt');

      const bytes = content(100, 32);
      const partial = await stage(inbox, bytes);
      expect(await inbox.inspect(['a.txt'])).toEqual({ kind: 'free' });
      const intruder = content(100, 33);
      await fs.writeFile(path.join(inbox.root, 'a.txt'), intruder);
      await expectFtError(inbox.place(partial, ['a.txt']), 'CONFLICT');
      expect((await fs.readFile(path.join(inbox.root, 'a.txt'))).equals(intruder)).toBe(true);
      // The verified upload is not lost: it is still in the partial folder.
      expect((await fs.readFile(partial.dataPath)).equals(bytes)).toBe(true);
    });

    it('statPlaced finds only regular files, never through links or out of the inbox', async () => {
      const inbox = await openInbox('rename');
      await fs.mkdir(path.join(base, 'outside'));
      await fs.writeFile(path.join(base, 'outside', 'secret'), 'x');
      await fs.symlink(path.join(base, 'outside'), path.join(inbox.root, 'link'));
      await fs.symlink(path.join(base, 'outside', 'secret'), path.join(inbox.root, 'file-link'));
      await fs.mkdir(path.join(inbox.root, 'folder'));
      for (const name of ['link/secret', 'file-link', 'folder', 'missing', '../outside/secret', 'folder/../file-link', '', '/etc/passwd']) {
        expect(inbox.statPlaced(name), name).toBeUndefined();
      }
    });

    describe('symbolic links and files on the way', () => {
      async function outsideDir(): Promise<string> {
        const outside = path.join(base, 'outside');
        await fs.mkdir(outside, { recursive: true });
        await fs.writeFile(path.join(outside, 'target.txt'), 'precious');
        return outside;
      }

      it.each(['overwrite', 'reject'] as const)('refuses a symbolic link as a parent folder with UNSAFE_PATH (%s)', async (policy) => {
        const inbox = await openInbox(policy);
        const outside = await outsideDir();
        await fs.symlink(outside, path.join(inbox.root, 'link'));
        await expectFtError(inbox.inspect(['link', 'x.txt']), 'UNSAFE_PATH');
        await expectFtError(inbox.place(await stage(inbox, content(10, 40)), ['link', 'x.txt']), 'UNSAFE_PATH');
        await expectFtError(inbox.place(await stage(inbox, content(10, 41)), ['link', 'deeper', 'x.txt']), 'UNSAFE_PATH');
        expect((await fs.readdir(outside)).sort()).toEqual(['target.txt']);
      });

      it('under rename, a symbolic link as a parent folder (at any depth) is passed over like a file', async () => {
        const inbox = await openInbox('rename');
        const outside = await outsideDir();
        await fs.symlink(outside, path.join(inbox.root, 'link'));
        await fs.mkdir(path.join(inbox.root, 'real'));
        await fs.symlink(outside, path.join(inbox.root, 'real', 'link'));
        expect((await inbox.place(await stage(inbox, content(10, 42)), ['link', 'x.txt'])).path).toBe('link (1)/x.txt');
        expect((await inbox.place(await stage(inbox, content(10, 43)), ['real', 'link', 'x.txt'])).path).toBe('real/link (1)/x.txt');
        expect((await fs.readdir(outside)).sort()).toEqual(['target.txt']);
      });

      it.each(['overwrite', 'reject'] as const)('refuses a symbolic link at the final name with UNSAFE_PATH on inspect (%s)', async (policy) => {
        const inbox = await openInbox(policy);
        const outside = await outsideDir();
        await fs.symlink(path.join(outside, 'target.txt'), path.join(inbox.root, 'x.txt'));
        await expectFtError(inbox.inspect(['x.txt']), 'UNSAFE_PATH');
      });

      it('refuses to place over a symbolic link under overwrite, leaving its target alone', async () => {
        const inbox = await openInbox('overwrite');
        const outside = await outsideDir();
        await fs.symlink(path.join(outside, 'target.txt'), path.join(inbox.root, 'x.txt'));
        await expectFtError(inbox.place(await stage(inbox, content(8, 44)), ['x.txt']), 'UNSAFE_PATH');
        expect(await fs.readFile(path.join(outside, 'target.txt'), 'utf8')).toBe('precious');
        expect((await fs.lstat(path.join(inbox.root, 'x.txt'))).isSymbolicLink()).toBe(true);
      });

      it('never writes through a symbolic link at the final name under rename or reject, even to identical content', async () => {
        const outside = await outsideDir();
        const renaming = await openInbox('rename', path.join(base, 'inbox-r'));
        await fs.symlink(path.join(outside, 'target.txt'), path.join(renaming.root, 'x.txt'));
        expect(await renaming.place(await stage(renaming, Buffer.from('precious')), ['x.txt'])).toMatchObject({
          path: 'x (1).txt',
          deduplicated: false,
        });

        const rejecting = await openInbox('reject', path.join(base, 'inbox-j'));
        await fs.symlink(path.join(outside, 'target.txt'), path.join(rejecting.root, 'x.txt'));
        await expectFtError(rejecting.place(await stage(rejecting, content(8, 46)), ['x.txt']), 'CONFLICT');

        expect(await fs.readFile(path.join(outside, 'target.txt'), 'utf8')).toBe('precious');
      });

      it.each(['overwrite', 'reject'] as const)('refuses a file where a folder is needed with CONFLICT (%s)', async (policy) => {
        const inbox = await openInbox(policy);
        await fs.writeFile(path.join(inbox.root, 'a'), 'i am a file');
        await expectFtError(inbox.place(await stage(inbox, content(10, 47)), ['a', 'b.txt']), 'CONFLICT');
        await expectFtError(inbox.place(await stage(inbox, content(10, 48)), ['a', 'b', 'c.txt']), 'CONFLICT');
        expect(await fs.readFile(path.join(inbox.root, 'a'), 'utf8')).toBe('i am a file');
      });

      it('a folder swapped for a link between two placements: the second goes to a variant, nothing outside', async () => {
        const inbox = await openInbox('rename');
        const outside = await outsideDir();
        expect((await inbox.place(await stage(inbox, content(10, 49)), ['d', 'a.txt'])).path).toBe('d/a.txt');
        await fs.rename(path.join(inbox.root, 'd'), path.join(inbox.root, 'd-moved'));
        await fs.symlink(outside, path.join(inbox.root, 'd'));
        // A cached handle of the old d must not be used: it is no longer at d.
        expect((await inbox.place(await stage(inbox, content(10, 50)), ['d', 'b.txt'])).path).toBe('d (1)/b.txt');
        expect((await fs.readdir(outside)).sort()).toEqual(['target.txt']);
        expect(await fs.readdir(path.join(inbox.root, 'd-moved'))).toEqual(['a.txt']);
      });
    });
  });

  describe('PartialStore.expire', () => {
    it('removes only old files named like partials, only in the partial folder', async () => {
      const inbox = await openInbox();
      const dir = inbox.partials.dir;
      const now = Date.now();
      const old = new Date(now - 2 * 24 * 3600_000);
      const ttl = 24 * 3600_000;
      const key = '0123456789abcdef0123456789abcdef';
      const legacy = '0123456789abcdef-10';

      const oldPart = `${key}.part`;
      const oldMeta = `${key}.json`;
      const oldPrivate = `${key}~0badf00d.part`;
      const oldTemp = `${key}.json.0badf00d.tmp`;
      const oldLegacy = [`${legacy}.part`, `${legacy}.json`, `n${legacy}.part`];
      const freshPart = `fedcba9876543210fedcba9876543210.part`;
      const freshLegacy = `fedcba9876543210-20.part`;
      const lookalikes = [
        'notes.txt',
        `${key.toUpperCase()}.part`,
        `${key}.part.bak`,
        `x${key}.part`,
        `${key.slice(1)}.part`,
        `${key}0.part`,
        `${key}.tmp`,
        `${key}.json.tmp`,
        `${key}~nothex!.part`,
        `${key}~0badf00d0.part`,
        `${legacy.toUpperCase()}.part`,
      ];
      for (const name of [oldPart, oldMeta, oldPrivate, oldTemp, freshPart, freshLegacy, ...oldLegacy, ...lookalikes]) {
        await fs.writeFile(path.join(dir, name), 'data');
      }
      // A folder named like a partial is not ours to delete.
      const folderLike = `11111111111111111111111111111111.part`;
      await fs.mkdir(path.join(dir, folderLike));
      // Files named like partials outside the folder.
      const outsideInRoot = path.join(inbox.root, oldPart);
      await fs.writeFile(outsideInRoot, 'user data');
      await fs.mkdir(path.join(inbox.root, 'sub'));
      const outsideInSub = path.join(inbox.root, 'sub', oldPart);
      await fs.writeFile(outsideInSub, 'user data');

      for (const name of [oldPart, oldMeta, oldPrivate, oldTemp, ...oldLegacy, ...lookalikes, folderLike]) await fs.utimes(path.join(dir, name), old, old);
      await fs.utimes(outsideInRoot, old, old);
      await fs.utimes(outsideInSub, old, old);

      const removed = inbox.partials.expire(ttl, now);
      expect(removed.sort()).toEqual([oldMeta, oldPart, oldPrivate, oldTemp, ...oldLegacy].sort());
      expect((await fs.readdir(dir)).sort()).toEqual([freshPart, freshLegacy, folderLike, ...lookalikes].sort());
      expect(await fs.readFile(outsideInRoot, 'utf8')).toBe('user data');
      expect(await fs.readFile(outsideInSub, 'utf8')).toBe('user data');
    });

    it('removes partials holding less than 1 MiB after an hour, larger ones only after the TTL', async () => {
      const inbox = await openInbox();
      const ttl = 7 * 24 * 3600_000;
      const full = await stage(inbox, content(RESUMABLE + 10, 70), 'full.bin'); // 1 MiB + 11 bytes
      const partial = await inbox.partials.acquire(await idOf(content(RESUMABLE + 10, 71), 'cut.bin'), PEER);
      await writeBody(partial!, content(1000, 72));
      partial!.release();
      full.release();
      expect(inbox.partials.count).toBe(2);
      const now = Date.now();
      // Just under an hour: both stay.
      expect(inbox.partials.expire(ttl, now + 3600_000 - 60_000)).toEqual([]);
      // An hour on: the one cut short after 1000 bytes goes with its metadata; the full one stays.
      expect(inbox.partials.expire(ttl, now + 3600_000 + 60_000).sort()).toEqual([`${partial!.key}.json`, `${partial!.key}.part`]);
      expect(await exists(full.dataPath)).toBe(true);
      expect(inbox.partials.count).toBe(1);
      // A TTL shorter than an hour applies to both.
      expect(inbox.partials.expire(600_000, now + 700_000).sort()).toEqual([`${full.key}.json`, `${full.key}.part`]);
      expect(inbox.partials.count).toBe(0);
    });

    it('removes links named like partials without touching what they point to', async () => {
      const inbox = await openInbox();
      const target = path.join(base, 'precious.txt');
      await fs.writeFile(target, 'precious');
      const link = path.join(inbox.partials.dir, 'abcdefabcdefabcdefabcdefabcdefab.part');
      await fs.symlink(target, link);
      expect(inbox.partials.expire(7 * 24 * 3600_000)).toEqual(['abcdefabcdefabcdefabcdefabcdefab.part']);
      expect(await fs.readFile(target, 'utf8')).toBe('precious');
    });

    it('keeps an old partial that is held right now', async () => {
      const inbox = await openInbox();
      const bytes = content(RESUMABLE + 100, 50);
      const partial = await inbox.partials.acquire(await idOf(bytes), PEER);
      await writeBody(partial!, bytes.subarray(0, 30) as Buffer);
      const old = new Date(Date.now() - 10 * 24 * 3600_000);
      await fs.utimes(partial!.dataPath, old, old);
      await fs.utimes(partial!.metaPath, old, old);
      expect(inbox.partials.expire(3600_000)).toEqual([]);
      expect(await fs.readFile(partial!.dataPath)).toHaveLength(30);
      partial!.release();
      expect(inbox.partials.expire(3600_000).sort()).toEqual([`${partial!.key}.json`, `${partial!.key}.part`]);
    });

    it('returns nothing when the partial folder is missing', async () => {
      const inbox = await openInbox();
      await fs.rm(inbox.partials.dir, { recursive: true });
      expect(inbox.partials.expire(0)).toEqual([]);
    });
  });
});

describe('Inbox.makeFolder in the path fallback', () => {
  it('refuses a folder that a parent swapped for a link between its check and the mkdir put outside', async () => {
    const base = await nodeFs.mkdtemp(path.join(os.tmpdir(), 'ft-storage-test-'));
    try {
      const root = path.join(base, 'inbox');
      const outside = path.join(base, 'outside');
      await nodeFs.mkdir(outside);
      await nodeFs.mkdir(path.join(root, 'a'), { recursive: true });
      const swapped: FileSystem = {
        ...nodeFileSystem,
        mkdirSync: ((at: string, options: unknown) => {
          if (at === path.join(root, 'a', 'b')) {
            // A local user swaps the checked folder a for a link to the outside.
            nodeFileSystem.renameSync(path.join(root, 'a'), path.join(root, 'a.aside'));
            symlinkSync(outside, path.join(root, 'a'));
          }
          return nodeFileSystem.mkdirSync(at, options as never);
        }) as FileSystem['mkdirSync'],
      };
      const inbox = await Inbox.open(root, swapped, 'reject', { folderHandles: false });
      try {
        await expectFtError(inbox.makeFolder(['a', 'b']), 'UNSAFE_PATH');
      } finally {
        inbox.close();
      }
    } finally {
      await nodeFs.rm(base, { recursive: true, force: true });
    }
  });
});
