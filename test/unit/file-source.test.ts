import { createFsFromVolume, Volume } from 'memfs';
import { describe, expect, it } from 'vitest';
import { fileSystemOf, READ_BLOCK_BYTES, type FileSystem } from '../../src/file-system.js';
import { FtError } from '../../src/errors.js';
import { FileSource } from '../../src/sender/file-source.js';
import { collectFiles, hashLocalFile } from '../../src/sender/local-files.js';
import { randomBuffer } from '../helpers/files.js';

const SIZE = 3 * READ_BLOCK_BYTES + 12_345;

/** A memfs volume holding /data/big.bin, and a FileSystem over it that counts positional reads. */
function volumeWith(content: Buffer): { fs: FileSystem; raw: ReturnType<typeof createFsFromVolume>; reads: () => number } {
  const volume = Volume.fromJSON({});
  const raw = createFsFromVolume(volume);
  raw.mkdirSync('/data');
  raw.writeFileSync('/data/big.bin', content);
  const base = fileSystemOf(raw);
  let reads = 0;
  const fs: FileSystem = {
    ...base,
    open: (async (...args: Parameters<FileSystem['open']>) => {
      const handle = await base.open(...args);
      return new Proxy(handle, {
        get(target, property) {
          if (property === 'read') {
            return (...readArgs: unknown[]) => {
              reads += 1;
              return (target.read as (...a: unknown[]) => unknown)(...readArgs);
            };
          }
          const value = Reflect.get(target, property) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    }) as FileSystem['open'],
  };
  return { fs, raw, reads: () => reads };
}

async function sourceOf(fs: FileSystem): Promise<FileSource> {
  const { files } = collectFiles(['/data/big.bin'], fs);
  const source = new FileSource(files[0]!, fs);
  await hashLocalFile(source, fs);
  return source;
}

describe('FileSource', () => {
  it('reads [offset, size) in blocks, each awaited before more is read: at most two blocks ahead', async () => {
    const content = randomBuffer(SIZE, 'source');
    const { fs, reads } = volumeWith(content);
    const source = await sourceOf(fs);
    const before = reads();
    const blocks: Buffer[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let readsWhileHeld = -1;
    const reading = source.read(
      1000,
      async (block) => {
        blocks.push(Buffer.from(block));
        if (blocks.length === 1) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          readsWhileHeld = reads() - before;
          await gate;
        }
      },
      { keepsBlocks: true },
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    await reading;
    expect(readsWhileHeld).toBe(2);
    expect(blocks.every((block) => block.length <= READ_BLOCK_BYTES)).toBe(true);
    expect(Buffer.concat(blocks).equals(content.subarray(1000))).toBe(true);
  });

  it('with keepsBlocks, blocks kept by the consumer stay intact (each is a buffer of its own)', async () => {
    const content = randomBuffer(SIZE, 'kept');
    const { fs } = volumeWith(content);
    const source = await sourceOf(fs);
    const kept: Buffer[] = [];
    await source.read(0, (block) => void kept.push(block), { keepsBlocks: true });
    expect(Buffer.concat(kept).equals(content)).toBe(true);
    // Without it the two buffers take turns: what is kept is overwritten (fine for a hasher).
    const reused: Buffer[] = [];
    await source.read(0, (block) => void reused.push(block));
    expect(Buffer.concat(reused).equals(content)).toBe(false);
  });

  it('a read of the first bytes only (a resume\'s prefix check) stops there', async () => {
    const content = randomBuffer(SIZE, 'prefix');
    const { fs } = volumeWith(content);
    const source = await sourceOf(fs);
    const parts: Buffer[] = [];
    await source.read(0, (block) => void parts.push(Buffer.from(block)), { length: READ_BLOCK_BYTES + 7 });
    expect(Buffer.concat(parts).equals(content.subarray(0, READ_BLOCK_BYTES + 7))).toBe(true);
  });

  it('FILE_CHANGED when the file shrinks while it is read, and with checkUnchanged when it was written meanwhile', async () => {
    const content = randomBuffer(SIZE, 'changes');
    const { fs, raw } = volumeWith(content);
    const source = await sourceOf(fs);
    const shrunk = source.read(0, () => raw.truncateSync('/data/big.bin', READ_BLOCK_BYTES), {}).catch((e: unknown) => e);
    expect(await shrunk).toMatchObject({ code: 'FILE_CHANGED', message: '/data/big.bin shrank while it was being read; run the command again' });

    raw.writeFileSync('/data/big.bin', content);
    const again = await sourceOf(fs);
    const later = new Date(Date.now() + 5000);
    const written = await again.read(0, () => raw.utimesSync('/data/big.bin', later, later), { checkUnchanged: true }).catch((e: unknown) => e);
    expect(written).toMatchObject({ code: 'FILE_CHANGED', message: '/data/big.bin changed while it was being sent; run the command again' });
    // Not asked to check: the same read goes through.
    await expect(again.read(0, () => undefined)).resolves.toBeUndefined();
  });

  it('an error of the consumer comes through as it is, not as a read error of the file', async () => {
    const { fs } = volumeWith(randomBuffer(SIZE, 'consumer'));
    const source = await sourceOf(fs);
    const lost = new FtError('CONNECTION_LOST', 'gone');
    await expect(
      source.read(0, () => {
        throw lost;
      }),
    ).rejects.toBe(lost);
  });

  it('changed(): false while the file is as hashed, true once written or replaced', async () => {
    const content = randomBuffer(SIZE, 'changed');
    const { fs, raw } = volumeWith(content);
    const source = await sourceOf(fs);
    expect(await source.changed()).toBe(false);
    const later = new Date(Date.now() + 5000);
    raw.utimesSync('/data/big.bin', later, later);
    expect(await source.changed()).toBe(true);
    await source.hashNow();
    expect(await source.changed()).toBe(false);
    raw.writeFileSync('/data/other.bin', content);
    raw.renameSync('/data/other.bin', '/data/big.bin');
    expect(await source.changed()).toBe(true);
  });

  it('a small file is read from the bytes kept from hashing, without opening it again', async () => {
    const content = randomBuffer(5000, 'small');
    const { fs, raw, reads } = volumeWith(content);
    raw.writeFileSync('/data/big.bin', content);
    const { files } = collectFiles(['/data/big.bin'], fs);
    const source = new FileSource(files[0]!, fs);
    await hashLocalFile(source, fs, { keep: true });
    raw.writeFileSync('/data/big.bin', Buffer.alloc(5000));
    const before = reads();
    const parts: Buffer[] = [];
    await source.read(100, (block) => void parts.push(Buffer.from(block)));
    expect(reads()).toBe(before);
    expect(Buffer.concat(parts).equals(content.subarray(100))).toBe(true);
    source.release();
    expect(source.content).toBeUndefined();
  });
});
