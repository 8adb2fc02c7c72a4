import { promises as nodeFs } from 'node:fs';
import path from 'node:path';
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { fileSystemOf, nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { hashBytes } from '../../src/hashing.js';
import { SMALL_BODY_BYTES } from '../../src/storage/local/body-sink.js';
import { LocalUploadStore } from '../../src/storage/local/local-store.js';
import { PARTIAL_SWEEP_INTERVAL_MS } from '../../src/storage/local/partials.js';
import { listPartials } from '../../src/storage/local/partial-listing.js';
import { ComparisonTurns } from '../../src/storage/local/same-content.js';
import { PARTIAL_DIR } from '../../src/names/safe-name.js';
import { content, uploadStoreContract, type StoreMedium, type StoreSetup } from '../contract/upload-store.contract.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

type FullFs = typeof nodeFs;

/** The medium of a local store: its inbox folder, reached with the full promises API. */
function folderMedium(fs: FullFs, root: string): StoreMedium {
  const at = (relative: string) => path.join(root, ...relative.split('/'));
  const list = async (dir: string, prefix: string): Promise<string[]> => {
    const found: string[] = [];
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      if (prefix === '' && entry.name === PARTIAL_DIR) continue;
      const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory()) found.push(...(await list(path.join(dir, entry.name), relative)));
      else found.push(relative);
    }
    return found;
  };
  return {
    read: async (relative) => fs.readFile(at(relative)).catch(() => undefined),
    put: async (relative, bytes) => {
      await fs.mkdir(path.dirname(at(relative)), { recursive: true });
      await fs.writeFile(at(relative), bytes);
    },
    modify: async (relative) => {
      const bytes = await fs.readFile(at(relative));
      const handle = await fs.open(at(relative), 'r+');
      try {
        await handle.write(Buffer.from([bytes[0]! ^ 0xff]), 0, 1, 0);
      } finally {
        await handle.close();
      }
    },
    replace: async (relative) => {
      const bytes = await fs.readFile(at(relative));
      await fs.writeFile(`${at(relative)}.new`, bytes);
      await fs.rename(`${at(relative)}.new`, at(relative));
    },
    list: async () => (await list(root, '')).sort(),
    entry: async (relative) => {
      const stat = await fs.lstat(at(relative)).catch(() => undefined);
      if (!stat) return undefined;
      return stat.isDirectory() ? { kind: 'folder' } : { kind: 'file', mtimeMs: Math.floor(stat.mtimeMs), mode: stat.mode & 0o7777 };
    },
  };
}

interface Disk {
  name: string;
  folderHandles?: boolean;
  make(): Promise<{ fs: FullFs; ft: FileSystem; base: string }>;
}

const disks: Disk[] = [
  {
    name: 'memfs',
    async make() {
      const volume = createFsFromVolume(new Volume());
      const fs = volume.promises as unknown as FullFs;
      await fs.mkdir('/base', { recursive: true });
      return { fs, ft: fileSystemOf(volume), base: '/base' };
    },
  },
  { name: 'a real disk', make: async () => ({ fs: nodeFs, ft: nodeFileSystem, base: await tempDir('ft-store-') }) },
  {
    name: 'a real disk without folder handles',
    folderHandles: false,
    make: async () => ({ fs: nodeFs, ft: nodeFileSystem, base: await tempDir('ft-store-') }),
  },
];

afterEach(removeTempDirs);

for (const disk of disks) {
  uploadStoreContract({
    name: `local store on ${disk.name}`,
    smallUploadBytes: SMALL_BODY_BYTES,
    async create(setup: StoreSetup) {
      const { fs, ft, base } = await disk.make();
      const store = await LocalUploadStore.open(path.join(base, 'inbox'), { fs: ft, folderHandles: disk.folderHandles, ...setup });
      return { store, medium: folderMedium(fs, store.privateLocation), dispose: () => store.close() };
    },
  });
}

describe('LocalUploadStore', () => {
  const OWNER = 'c'.repeat(64);
  const PEER = '192.0.2.9';
  const opened: LocalUploadStore[] = [];
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });
  const open = async (dir?: string, options: Parameters<typeof LocalUploadStore.open>[1] = {}) => {
    const store = await LocalUploadStore.open(dir ?? path.join(await tempDir('ft-store-'), 'inbox'), options);
    opened.push(store);
    return store;
  };

  it('creates the inbox as Inbox.open does; its location is the real path, and never leaves the machine', async () => {
    const base = await tempDir('ft-store-');
    await nodeFs.mkdir(path.join(base, 'real'));
    await nodeFs.symlink(path.join(base, 'real'), path.join(base, 'link'));
    const store = await open(path.join(base, 'link', 'deep', 'inbox'));
    expect(store.privateLocation).toBe(await nodeFs.realpath(path.join(base, 'real', 'deep', 'inbox')));
    expect(store.stateDir).toBe(path.join(store.privateLocation, PARTIAL_DIR));
    expect((await nodeFs.lstat(store.stateDir)).mode & 0o777).toBe(0o700);
    expect(store.policy).toBe('rename');
  });

  it('declares link(2)’s atomic no-replace, durable uploads, late size (streams), metadata; free space from statfs', async () => {
    const store = await open();
    expect(store.capabilities).toEqual({ atomicNoReplace: true, freeSpace: true, lateSize: true, durableUploads: true, metadata: true });
    const stats = await nodeFs.statfs(store.privateLocation);
    const free = await store.freeSpace();
    expect(free).toBeGreaterThan(0);
    // Within what other writers on the machine may have taken meanwhile.
    expect(Math.abs(free! - stats.bavail * stats.bsize)).toBeLessThan(1024 ** 3);
    expect(store.sweepIntervalMs).toBe(PARTIAL_SWEEP_INTERVAL_MS);
  });

  it('cannot tell free space where the file system has no statfs', async () => {
    const { statfs: _none, ...withoutStatfs } = nodeFileSystem;
    const store = await open(undefined, { fs: withoutStatfs });
    expect(store.capabilities.freeSpace).toBe(false);
    expect(await store.freeSpace()).toBeUndefined();
  });

  it('refuses a bad takeoverWaitMs', async () => {
    await expect(open(undefined, { takeoverWaitMs: -1 })).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('refuses writes once the upload is taken over: the newer one gets exactly what was written before', async () => {
    const store = await open(undefined, { takeoverWaitMs: 60_000 });
    const bytes = content(SMALL_BODY_BYTES + 500_000, 40);
    const key = { owner: OWNER, filename: 'revoked.bin', size: bytes.length, hash: await hashBytes(bytes) };
    const first = await store.open(key, { peer: PEER });
    const writer = await first.append(0, bytes.length);
    await writer.write(bytes.subarray(0, 300_000));
    const second = store.open(key, { peer: PEER });
    expect(first.revoked.aborted).toBe(true);
    expect(() => writer.write(bytes.subarray(300_000, 300_001))).toThrow(FtError);
    await first.abandon();
    const taken = await second;
    expect(taken.offset).toBe(300_000);
    await taken.abandon();
  });

  it('checks how the port is used: append at the offset or 0 only, a body of the right length, end before commit', async () => {
    const store = await open();
    const bytes = content(1000, 41);
    const key = { owner: OWNER, filename: 'misuse.bin', size: bytes.length, hash: await hashBytes(bytes) };
    const upload = await store.open(key, { peer: PEER });
    await expect(upload.append(10, 990)).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(upload.append(0, 999)).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(upload.commit(['misuse.bin'], key.hash)).rejects.toMatchObject({ code: 'INTERNAL' });
    const writer = await upload.append(0, undefined);
    expect(() => writer.write(Buffer.alloc(1001))).toThrow(FtError);
    writer.write(bytes.subarray(0, 999));
    await expect(writer.end()).rejects.toMatchObject({ code: 'INTERNAL' });
    writer.write(bytes.subarray(999));
    await expect(writer.end(1001)).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(await writer.end(1000)).toBe(key.hash);
    await expect(upload.append(0, 1000)).rejects.toMatchObject({ code: 'INTERNAL' });
    expect((await upload.commit(['misuse.bin'], key.hash)).path).toBe('misuse.bin');
  });

  it('a commit refused after the metadata was set leaves no peer-chosen time or mode on the partial kept', async () => {
    const store = await open(undefined, { onConflict: 'reject', umask: 0 });
    const bytes = content(SMALL_BODY_BYTES + 10, 43);
    const key = { owner: OWNER, filename: 'late.bin', size: bytes.length, hash: await hashBytes(bytes) };
    const upload = await store.open(key, { peer: PEER });
    const writer = await upload.append(0, bytes.length);
    await writer.write(bytes);
    const hash = await writer.end();
    // The name is taken after the header was accepted (another connection's file, say).
    await nodeFs.writeFile(path.join(store.privateLocation, 'late.bin'), 'theirs');
    const year33658 = 999_999_999_999n * 1_000_000_000n;
    await expect(upload.commit(['late.bin'], hash, { mtimeNs: year33658, mode: 0o000 })).rejects.toMatchObject({ code: 'CONFLICT' });
    const partialDir = path.join(store.privateLocation, PARTIAL_DIR);
    const kept = (await nodeFs.readdir(partialDir)).filter((name) => name.endsWith('.part'));
    expect(kept).toHaveLength(1);
    const stat = await nodeFs.stat(path.join(partialDir, kept[0]!));
    expect(stat.mtimeMs).toBeLessThanOrEqual(Date.now() + 1000);
    expect(stat.mode & 0o777).toBe(0o600);
    // So the sweep still deletes it once its time is up.
    await store.expire(1000, Date.now() + 2 * 86_400_000);
    expect((await nodeFs.readdir(partialDir)).filter((name) => name.endsWith('.part'))).toEqual([]);
  });

  it('a partial left with a far-future time (the receiver stopped as it was placed) still expires, and ft status says when', async () => {
    const dir = path.join(await tempDir('ft-store-'), 'inbox');
    const store = await open(dir);
    const bytes = content(SMALL_BODY_BYTES + 10, 44);
    const key = { owner: OWNER, filename: 'stopped.bin', size: bytes.length, hash: await hashBytes(bytes) };
    const upload = await store.open(key, { peer: PEER });
    const writer = await upload.append(0, bytes.length);
    await writer.write(bytes.subarray(0, 1000));
    await upload.abandon();
    const partialDir = path.join(store.privateLocation, PARTIAL_DIR);
    const [part] = (await nodeFs.readdir(partialDir)).filter((name) => name.endsWith('.part'));
    // What setMetadata gives the partial just before placement, were the receiver stopped there.
    await nodeFs.utimes(path.join(partialDir, part!), new Date(), '999999999999' as unknown as number);
    const listed = await listPartials(dir);
    expect(listed.partials[0]!.lastWriteAt).toBeLessThanOrEqual(Date.now() + 1000);
    await store.expire(1000, Date.now() + 2 * 86_400_000);
    expect((await nodeFs.readdir(partialDir)).filter((name) => name.endsWith('.part'))).toEqual([]);
  });

  it('abandon while a commit runs waits for it and changes nothing', async () => {
    const store = await open();
    const bytes = content(SMALL_BODY_BYTES + 10, 42);
    const key = { owner: OWNER, filename: 'both.bin', size: bytes.length, hash: await hashBytes(bytes) };
    const upload = await store.open(key, { peer: PEER });
    const writer = await upload.append(0, bytes.length);
    await writer.write(bytes);
    const hash = await writer.end();
    const committing = upload.commit(['both.bin'], hash);
    await upload.discard();
    expect((await committing).path).toBe('both.bin');
    expect((await nodeFs.readFile(path.join(store.privateLocation, 'both.bin'))).equals(bytes)).toBe(true);
  });

  it('gives each store its own limit on byte comparisons: a busy one never holds up another', async () => {
    const a = new ComparisonTurns(1);
    const b = new ComparisonTurns(1);
    await a.take();
    let second = false;
    void a.take().then(() => (second = true));
    await b.take();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(second).toBe(false);
    a.give();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(second).toBe(true);
  });

  describe('streams (no size when opened)', () => {
    const streamKey = (filename: string) => ({ owner: OWNER, filename, size: undefined });
    const folder = async (store: LocalUploadStore) => (await nodeFs.readdir(store.stateDir)).filter((name) => name !== 'receipts.key');

    it('writes to .ft-partial/<random>.stream, counted in the caps; the file goes once let go', async () => {
      const store = await open(undefined, { partialLimits: { maxPartialsPerPeer: 1 } });
      const upload = await store.open(streamKey('s.bin'), { peer: PEER });
      const writer = await upload.append(0, undefined);
      await writer.write(Buffer.alloc(2 * SMALL_BODY_BYTES, 1));
      const [name, ...others] = await folder(store);
      expect(others).toEqual([]);
      expect(name).toMatch(/^[0-9a-f]{32}\.stream$/);
      // Counted: the peer's one partial is in use, so another upload is BUSY.
      const busy = await store.open({ owner: OWNER, filename: 'big.bin', size: 4 * SMALL_BODY_BYTES }, { peer: PEER }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect((busy as FtError).code).toBe('BUSY');
      await upload.abandon();
      expect(await folder(store)).toEqual([]);
      const after = await store.open({ owner: OWNER, filename: 'big.bin', size: 4 * SMALL_BODY_BYTES }, { peer: PEER });
      await after.abandon();
    });

    it('two streams of one name and owner are two uploads; neither resumes, nor is found by resume()', async () => {
      const store = await open();
      const first = await store.open(streamKey('same.bin'), { peer: PEER });
      const second = await store.open(streamKey('same.bin'), { peer: PEER });
      expect(first.revoked.aborted).toBe(false);
      expect([first.offset, second.offset, first.resumable]).toEqual([0, 0, false]);
      expect(await store.resume(streamKey('same.bin'), { peer: PEER })).toBeUndefined();
      await first.discard();
      await second.discard();
    });

    it('a leftover .stream of a receiver that died is deleted when the store opens, and by the sweep', async () => {
      const dir = path.join(await tempDir('ft-store-'), 'inbox');
      const first = await open(dir);
      const leftover = path.join(first.stateDir, `${'ab'.repeat(16)}.stream`);
      await nodeFs.writeFile(leftover, 'half a dump');
      await open(dir);
      expect(await folder(first)).toEqual([]);
      await nodeFs.writeFile(leftover, 'half a dump');
      expect(await first.expire(7 * 24 * 3600_000)).toEqual([path.basename(leftover)]);
      // One in use is left alone.
      const upload = await first.open(streamKey('live.bin'), { peer: PEER });
      await (await upload.append(0, undefined)).write(Buffer.alloc(2 * SMALL_BODY_BYTES));
      expect(await first.expire(7 * 24 * 3600_000)).toEqual([]);
      await upload.abandon();
    });

    it('end(size) must declare exactly what was written', async () => {
      const store = await open();
      const upload = await store.open(streamKey('x.bin'), { peer: PEER });
      const writer = await upload.append(0, undefined);
      await writer.write(Buffer.from('abc'));
      await expect(writer.end(4)).rejects.toMatchObject({ code: 'INTERNAL' });
      await expect(writer.end()).rejects.toMatchObject({ code: 'INTERNAL' });
      await upload.discard();
      const again = await store.open(streamKey('x.bin'), { peer: PEER });
      await expect(again.append(5, undefined)).rejects.toMatchObject({ code: 'INTERNAL' });
      await again.discard();
    });
  });
});
