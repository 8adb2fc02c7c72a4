/**
 * The contract of the upload store port (src/storage/upload-store.ts), for any store: written
 * against the port alone (no paths, no file-system calls), so every backend runs the same
 * checks. What needs the backing medium itself (a file appearing, or changed, by other means)
 * goes through the small hooks a factory provides.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { FtError, type ErrorCode } from '../../src/errors.js';
import { hashBytes } from '../../src/hashing.js';
import type { ConflictPolicy } from '../../src/storage/conflict-policy.js';
import type { FileMetadata, PartialUpload, Upload, UploadKey, UploadStore, UploadWriter } from '../../src/storage/upload-store.js';

/** What the contract may do to a store's medium behind its back, by paths relative to the inbox. */
export interface StoreMedium {
  /** The bytes of the file at `path`, or undefined when there is none. */
  read(path: string): Promise<Buffer | undefined>;
  /** A file put at `path` by someone else (its folders created as needed). */
  put(path: string, bytes: Buffer): Promise<void>;
  /** The file at `path` changed in place: the same size, other bytes. */
  modify(path: string): Promise<void>;
  /** The file at `path` replaced by another file with the same bytes. */
  replace(path: string): Promise<void>;
  /** The paths of every file the inbox shows (not the store's own state), sorted. */
  list(): Promise<string[]>;
  /** What is at `path`: a folder, or a file with its modification time (ms since the epoch) and mode bits. */
  entry(path: string): Promise<{ kind: 'folder' } | { kind: 'file'; mtimeMs: number; mode: number } | undefined>;
}

export interface StoreSetup {
  onConflict: ConflictPolicy;
  partialLimits?: { maxPartials?: number; maxPartialsPerPeer?: number };
  takeoverWaitMs?: number;
  /** Bits a store takes away from the modes it applies (FileMetadata.mode). */
  umask?: number;
}

export interface StoreUnderTest {
  store: UploadStore;
  medium: StoreMedium;
  /** Closes the store and removes what it made. */
  dispose(): Promise<void>;
}

export interface StoreFactory {
  name: string;
  /** Uploads of at most this many bytes are never kept for resume. */
  smallUploadBytes: number;
  create(setup: StoreSetup): Promise<StoreUnderTest>;
}

const OWNER_A = 'a'.repeat(64);
const OWNER_B = 'b'.repeat(64);
const PEER = '192.0.2.1';
const OTHER_PEER = '192.0.2.2';
const KiB = 1024;

export function content(size: number, seed: number): Buffer {
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

/** Awaits `promise` and expects it to reject with an FtError of `code`. */
export async function expectFtError(promise: Promise<unknown>, code: ErrorCode): Promise<FtError> {
  let thrown: unknown;
  try {
    await promise;
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected an FtError ${code}`).toBeInstanceOf(FtError);
  expect((thrown as FtError).code, (thrown as Error).message).toBe(code);
  return thrown as FtError;
}

/** Writes `bytes` in chunks of `chunk`, waiting whenever the writer asks to. */
async function writeAll(writer: UploadWriter, bytes: Buffer, chunk = 64 * KiB): Promise<void> {
  for (let at = 0; at < bytes.length; at += chunk) await writer.write(bytes.subarray(at, at + chunk));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function uploadStoreContract(factory: StoreFactory): void {
  /** Over the small-upload size: kept for resume. */
  const LARGE = factory.smallUploadBytes + 300 * KiB;
  /** A prefix over half of LARGE, so a resume's rest is small (the in-memory path of some stores). */
  const CUT = factory.smallUploadBytes - 100 * KiB;
  const SMALL = 10 * KiB;

  describe(`upload store contract: ${factory.name}`, () => {
    const made: StoreUnderTest[] = [];
    afterEach(async () => {
      for (const { dispose } of made.splice(0)) await dispose();
    });
    const create = async (setup: Partial<StoreSetup> = {}) => {
      const made1 = await factory.create({ onConflict: 'rename', ...setup });
      made.push(made1);
      return made1;
    };
    const keyOf = async (bytes: Buffer, filename: string, owner = OWNER_A): Promise<UploadKey> => ({
      owner,
      filename,
      size: bytes.length,
      hash: await hashBytes(bytes),
    });

    /** A whole upload from 0, committed under `name`. */
    async function upload(store: UploadStore, bytes: Buffer, name: string, owner = OWNER_A, metadata?: FileMetadata) {
      const key = await keyOf(bytes, name, owner);
      const opened = await store.open(key, { peer: PEER });
      const writer = await opened.append(0, bytes.length);
      await writeAll(writer, bytes);
      const hash = await writer.end();
      return opened.commit(name.split('/'), hash, metadata);
    }

    /** Writes the first `cut` bytes and abandons. */
    async function leave(store: UploadStore, key: UploadKey, bytes: Buffer, cut: number): Promise<Upload> {
      const opened = await store.open(key, { peer: PEER });
      const writer = await opened.append(0, bytes.length);
      await writeAll(writer, bytes.subarray(0, cut));
      expect(writer.size).toBe(cut);
      await opened.abandon();
      return opened;
    }

    describe('inspect', () => {
      it.each(['rename', 'overwrite', 'reject'] as const)('says free for a new name, and for a taken one what %s says', async (policy) => {
        const { store } = await create({ onConflict: policy });
        expect(await store.inspect(['new.txt'])).toEqual({ kind: 'free' });
        expect(await store.inspect(['deep', 'er', 'new.txt'])).toEqual({ kind: 'free' });
        await upload(store, content(100, 1), 'taken.txt');
        const taken = await store.inspect(['taken.txt']);
        if (policy === 'reject') expect(taken).toEqual({ kind: 'conflict', reason: expect.stringContaining('taken.txt') });
        else expect(taken).toEqual({ kind: 'free' });
      });

      it('under overwrite, a name that is a folder is a conflict', async () => {
        const { store, medium } = await create({ onConflict: 'overwrite' });
        await medium.put('folder/inside.txt', Buffer.from('x'));
        expect((await store.inspect(['folder'])).kind).toBe('conflict');
      });
    });

    describe('open, write, commit', () => {
      it('opens a new upload at offset 0, not revoked; its prefix hash is that of nothing', async () => {
        const { store } = await create();
        const opened = await store.open(await keyOf(content(LARGE, 2), 'fresh.bin'), { peer: PEER });
        expect(opened.offset).toBe(0);
        expect(opened.revoked.aborted).toBe(false);
        expect(await opened.hashPrefix()).toBe(await hashBytes(Buffer.alloc(0)));
        await opened.discard();
      });

      it.each([
        ['empty', 0],
        ['small', SMALL],
        ['large', LARGE],
      ])('places exactly the bytes of a %s file and returns their hash', async (_what, size) => {
        const { store, medium } = await create();
        const bytes = content(size, 3);
        const key = await keyOf(bytes, 'docs/file.bin');
        const opened = await store.open(key, { peer: PEER });
        const writer = await opened.append(0, size);
        await writeAll(writer, bytes, 7777);
        expect(writer.size).toBe(size);
        expect(await writer.end()).toBe(key.hash);
        const placed = await opened.commit(['docs', 'file.bin'], key.hash!);
        expect(placed.path).toBe('docs/file.bin');
        expect(placed.deduplicated).toBe(false);
        expect((await medium.read('docs/file.bin'))?.equals(bytes)).toBe(true);
        expect(await medium.list()).toEqual(['docs/file.bin']);
        // Committed, the upload is gone: the same key starts afresh.
        const again = await store.open(key, { peer: PEER });
        expect(again.offset).toBe(0);
        await again.discard();
        // And letting go of a committed upload changes nothing.
        await opened.abandon();
        await opened.discard();
        expect((await medium.read('docs/file.bin'))?.equals(bytes)).toBe(true);
      });

      it.each([
        ['small', SMALL],
        ['large', LARGE],
      ])('a %s file whose hash is not the expected one: HASH_MISMATCH, nothing placed, nothing kept for resume', async (_what, size) => {
        const { store, medium } = await create();
        const bytes = content(size, 4);
        const key = await keyOf(bytes, 'wrong.bin');
        const opened = await store.open(key, { peer: PEER });
        const writer = await opened.append(0, size);
        await writeAll(writer, bytes);
        const hash = await writer.end();
        const expected = await hashBytes(content(size, 5));
        const error = await expectFtError(opened.commit(['wrong.bin'], expected), 'HASH_MISMATCH');
        expect(error.message).toBe(`content of wrong.bin hashes to ${hash}, not ${expected}; nothing was kept`);
        expect(await medium.list()).toEqual([]);
        const again = await store.open(key, { peer: PEER });
        expect(again.offset).toBe(0);
        await again.abandon();
      });
    });

    describe('abandon, resume, discard', () => {
      it('keeps a large upload abandoned for resume: its offset, and the hash of exactly that prefix', async () => {
        const { store } = await create();
        const bytes = content(LARGE, 6);
        const key = await keyOf(bytes, 'big.bin');
        const first = await leave(store, key, bytes, CUT);
        expect(first.resumable).toBe(true);
        // Idempotent, and never throws.
        await first.abandon();
        await first.discard();
        const again = await store.open(key, { peer: PEER });
        expect(again.offset).toBe(CUT);
        expect(again.resumable).toBe(true);
        expect(await again.hashPrefix()).toBe(await hashBytes(bytes.subarray(0, CUT)));
        expect(again.offset).toBe(CUT);
        await again.abandon();
      });

      it('resumes a complete upload abandoned before its commit at its size: an empty body, then commit', async () => {
        const { store, medium } = await create();
        const bytes = content(LARGE, 29);
        const key = await keyOf(bytes, 'complete.bin');
        const first = await store.open(key, { peer: PEER });
        const writer = await first.append(0, LARGE);
        await writeAll(writer, bytes);
        await writer.end();
        await first.abandon();
        const again = await store.open(key, { peer: PEER });
        expect(again.offset).toBe(LARGE);
        expect(await again.hashPrefix()).toBe(key.hash);
        const rest = await again.append(LARGE, 0);
        expect(await rest.end()).toBe(key.hash);
        await again.commit(['complete.bin'], key.hash!);
        expect((await medium.read('complete.bin'))?.equals(bytes)).toBe(true);
      });

      it('never keeps a small upload', async () => {
        const { store } = await create();
        const bytes = content(factory.smallUploadBytes, 7);
        const key = await keyOf(bytes, 'small.bin');
        const first = await leave(store, key, bytes, 5000);
        expect(first.resumable).toBe(false);
        const again = await store.open(key, { peer: PEER });
        expect(again.offset).toBe(0);
        await again.abandon();
      });

      it('resumes with append(offset): the committed file is the whole content', async () => {
        const { store, medium } = await create();
        const bytes = content(LARGE, 8);
        const key = await keyOf(bytes, 'resumed.bin');
        await leave(store, key, bytes, CUT);
        const again = await store.open(key, { peer: PEER });
        await again.hashPrefix();
        const writer = await again.append(again.offset, LARGE - CUT);
        expect(writer.size).toBe(CUT);
        await writeAll(writer, bytes.subarray(CUT));
        expect(writer.size).toBe(LARGE);
        expect(await writer.end()).toBe(key.hash);
        expect((await again.commit(['resumed.bin'], key.hash!)).path).toBe('resumed.bin');
        expect((await medium.read('resumed.bin'))?.equals(bytes)).toBe(true);
      });

      it('starts over with append(0): what was kept is replaced', async () => {
        const { store, medium } = await create();
        const bytes = content(LARGE, 9);
        const key = await keyOf(bytes, 'over.bin');
        // What was kept is of other bytes (the sender's file changed, and its hash is not in the key).
        await leave(store, { ...key, hash: undefined }, content(LARGE, 10), CUT);
        const again = await store.open(key, { peer: PEER });
        expect(again.offset).toBe(CUT);
        expect(await again.hashPrefix()).not.toBe(await hashBytes(bytes.subarray(0, CUT)));
        const writer = await again.append(0, LARGE);
        expect(writer.size).toBe(0);
        await writeAll(writer, bytes);
        expect(await writer.end()).toBe(key.hash);
        await again.commit(['over.bin'], key.hash!);
        expect((await medium.read('over.bin'))?.equals(bytes)).toBe(true);
      });

      it('discard deletes what was held: nothing placed, nothing to resume', async () => {
        const { store, medium } = await create();
        const bytes = content(LARGE, 11);
        const key = await keyOf(bytes, 'gone.bin');
        const opened = await store.open(key, { peer: PEER });
        const writer = await opened.append(0, LARGE);
        await writeAll(writer, bytes.subarray(0, CUT));
        await opened.discard();
        await opened.discard();
        await opened.abandon();
        expect(await medium.list()).toEqual([]);
        const again = await store.open(key, { peer: PEER });
        expect(again.offset).toBe(0);
        await again.abandon();
      });

      it('discard after end, before commit, keeps nothing either', async () => {
        const { store } = await create();
        const bytes = content(LARGE, 12);
        const key = await keyOf(bytes, 'ended.bin');
        const opened = await store.open(key, { peer: PEER });
        const writer = await opened.append(0, LARGE);
        await writeAll(writer, bytes);
        await writer.end();
        await opened.discard();
        expect((await store.open(key, { peer: PEER })).offset).toBe(0);
      });

      it('any split into chunks and any interruption point give the same committed bytes', async () => {
        const { store, medium } = await create();
        let run = 0;
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: factory.smallUploadBytes + 600 * KiB }),
            fc.double({ min: 0, max: 1, noNaN: true }),
            fc.array(fc.integer({ min: 1, max: 300 * KiB }), { minLength: 1, maxLength: 6 }),
            async (size, where, chunks) => {
              const bytes = content(size, ++run);
              const name = `prop-${run}.bin`;
              const key = await keyOf(bytes, name);
              const cut = Math.floor(size * where);
              const split = async (writer: UploadWriter, part: Buffer) => {
                for (let at = 0, i = 0; at < part.length; i++) {
                  const length = chunks[i % chunks.length]!;
                  await writer.write(part.subarray(at, at + length));
                  at += length;
                }
              };
              const first = await store.open(key, { peer: PEER });
              await split(await first.append(0, size), bytes.subarray(0, cut));
              await first.abandon();
              const again = await store.open(key, { peer: PEER });
              expect(again.offset).toBe(again.resumable ? cut : 0);
              if (again.offset > 0) expect(await again.hashPrefix()).toBe(await hashBytes(bytes.subarray(0, again.offset)));
              const from = again.offset;
              const writer = await again.append(from, size - from);
              await split(writer, bytes.subarray(from));
              expect(await writer.end()).toBe(key.hash);
              const placed = await again.commit([name], key.hash!);
              expect(placed.path).toBe(name);
              expect((await medium.read(name))?.equals(bytes)).toBe(true);
            },
          ),
          { numRuns: 12 },
        );
      });
    });

    describe('takeover', () => {
      it('onRevoked tells the holder once, at the takeover (at once when already revoked); its unsubscribe stops it', async () => {
        const { store } = await create({ takeoverWaitMs: 60_000 });
        const key = await keyOf(content(SMALL, 17), 'told.bin');
        const first = await store.open(key, { peer: PEER });
        const told: string[] = [];
        first.onRevoked(() => told.push('kept'));
        const stop = first.onRevoked(() => told.push('stopped'));
        stop();
        expect(told).toEqual([]);
        const taking = store.open(key, { peer: PEER });
        await expect.poll(() => told, { timeout: 10_000 }).toEqual(['kept']);
        first.onRevoked(() => told.push('late'));
        expect(told).toEqual(['kept', 'late']);
        await first.abandon();
        const second = await taking;
        expect(told).toEqual(['kept', 'late']);
        await second.discard();
      });

      it('a second open of a held key revokes the first, waits for it to let go, then sees what it kept', async () => {
        const { store, medium } = await create({ takeoverWaitMs: 60_000 });
        const bytes = content(LARGE, 13);
        const key = await keyOf(bytes, 'taken-over.bin');
        const first = await store.open(key, { peer: PEER });
        const writer = await first.append(0, LARGE);
        await writeAll(writer, bytes.subarray(0, CUT), 1000);
        let second: Upload | undefined;
        const taking = store.open(key, { peer: OTHER_PEER }).then((opened) => (second = opened));
        await expect.poll(() => first.revoked.aborted, { timeout: 10_000 }).toBe(true);
        await sleep(30);
        expect(second).toBeUndefined();
        await first.abandon();
        await taking;
        expect(second!.revoked.aborted).toBe(false);
        expect(second!.offset).toBe(CUT);
        expect(await second!.hashPrefix()).toBe(await hashBytes(bytes.subarray(0, CUT)));
        const rest = await second!.append(CUT, LARGE - CUT);
        await writeAll(rest, bytes.subarray(CUT));
        await second!.commit(['taken-over.bin'], await rest.end());
        expect((await medium.read('taken-over.bin'))?.equals(bytes)).toBe(true);
      });

      it('gives up with BUSY when the holder never lets go within the wait', async () => {
        const { store } = await create({ takeoverWaitMs: 100 });
        const key = await keyOf(content(SMALL, 14), 'stuck.bin');
        const holder = await store.open(key, { peer: PEER });
        await expectFtError(store.open(key, { peer: PEER }), 'BUSY');
        expect(holder.revoked.aborted).toBe(true);
        await holder.abandon();
        await (await store.open(key, { peer: PEER })).abandon();
      });

      it('options.signal ends the wait with BUSY; an aborted one does not wait, nor revoke', async () => {
        const { store } = await create({ takeoverWaitMs: 60_000 });
        const key = await keyOf(content(SMALL, 15), 'cancelled.bin');
        const holder = await store.open(key, { peer: PEER });
        await expectFtError(store.open(key, { peer: PEER, signal: AbortSignal.abort() }), 'BUSY');
        expect(holder.revoked.aborted).toBe(false);
        const controller = new AbortController();
        const waiting = store.open(key, { peer: PEER, signal: controller.signal });
        await expect.poll(() => holder.revoked.aborted, { timeout: 10_000 }).toBe(true);
        controller.abort();
        await expectFtError(waiting, 'BUSY');
        await holder.abandon();
      });

      it('a commit in progress is not revoked: the newer open waits for it, then starts afresh', async () => {
        const { store, medium } = await create({ takeoverWaitMs: 60_000 });
        const bytes = content(LARGE, 16);
        const key = await keyOf(bytes, 'committing.bin');
        const first = await store.open(key, { peer: PEER });
        const writer = await first.append(0, LARGE);
        await writeAll(writer, bytes);
        const hash = await writer.end();
        const committing = first.commit(['committing.bin'], hash);
        const second = store.open(key, { peer: PEER });
        await committing;
        expect(first.revoked.aborted).toBe(false);
        expect((await second).offset).toBe(0);
        expect((await medium.read('committing.bin'))?.equals(bytes)).toBe(true);
        await (await second).abandon();
      });

      it('different owners never share an upload of the same name and size: no wait, no offset', async () => {
        const { store } = await create({ takeoverWaitMs: 60_000 });
        const bytes = content(LARGE, 17);
        const mine = await store.open(await keyOf(bytes, 'photo.jpg', OWNER_A), { peer: PEER });
        await writeAll(await mine.append(0, LARGE), bytes.subarray(0, CUT));
        const theirs = await store.open(await keyOf(bytes, 'photo.jpg', OWNER_B), { peer: OTHER_PEER });
        expect(mine.revoked.aborted).toBe(false);
        expect(theirs.offset).toBe(0);
        await mine.abandon();
        await theirs.abandon();
        expect((await store.open(await keyOf(bytes, 'photo.jpg', OWNER_B), { peer: OTHER_PEER })).offset).toBe(0);
        const resumed = await store.open(await keyOf(bytes, 'photo.jpg', OWNER_A), { peer: PEER });
        expect(resumed.offset).toBe(CUT);
        await resumed.abandon();
      });
    });

    describe('quotas', () => {
      it('says BUSY when every upload that could make room is held; small uploads and other peers are not counted against it', async () => {
        const { store } = await create({ partialLimits: { maxPartials: 3, maxPartialsPerPeer: 2 } });
        const bytes = content(LARGE, 18);
        const held = [await store.open(await keyOf(bytes, 'q1'), { peer: PEER }), await store.open(await keyOf(bytes, 'q2'), { peer: PEER })];
        await expectFtError(store.open(await keyOf(bytes, 'q3'), { peer: PEER }), 'BUSY');
        // Never kept, so never counted.
        await (await store.open(await keyOf(content(SMALL, 19), 'tiny'), { peer: PEER })).abandon();
        const other = await store.open(await keyOf(bytes, 'o1'), { peer: OTHER_PEER });
        await expectFtError(store.open(await keyOf(bytes, 'o2'), { peer: '192.0.2.3' }), 'BUSY');
        // Let go (nothing written, so nothing kept), it leaves room.
        await held[0]!.abandon();
        const third = await store.open(await keyOf(bytes, 'q3'), { peer: PEER });
        await Promise.all([third.abandon(), held[1]!.abandon(), other.abandon()]);
      });
    });

    describe('conflicts when committing', () => {
      async function finished(store: UploadStore, bytes: Buffer, name: string) {
        const key = await keyOf(bytes, name);
        const opened = await store.open(key, { peer: PEER });
        const writer = await opened.append(0, bytes.length);
        await writeAll(writer, bytes);
        return { opened, hash: await writer.end() };
      }

      it.each([
        ['small', SMALL],
        ['large', LARGE],
      ])('under reject, a %s file whose name appeared after inspect: CONFLICT, and the other file untouched', async (_what, size) => {
        const { store, medium } = await create({ onConflict: 'reject' });
        const bytes = content(size, 20);
        expect(await store.inspect(['late.txt'])).toEqual({ kind: 'free' });
        const { opened, hash } = await finished(store, bytes, 'late.txt');
        const theirs = Buffer.from('someone else’s file');
        await medium.put('late.txt', theirs);
        await expectFtError(opened.commit(['late.txt'], hash), 'CONFLICT');
        expect((await medium.read('late.txt'))?.equals(theirs)).toBe(true);
        expect(await medium.list()).toEqual(['late.txt']);
        // A failed commit lets go, keeping what can be resumed (all of it), as abandon would.
        const again = await store.open(await keyOf(bytes, 'late.txt'), { peer: PEER, signal: AbortSignal.abort() });
        expect(again.offset).toBe(again.resumable ? size : 0);
        await again.abandon();
        await opened.abandon();
      });

      it('under rename, a taken name gets a variant, and both files stay', async () => {
        const { store, medium } = await create({ onConflict: 'rename' });
        const theirs = content(SMALL, 21);
        await medium.put('name.txt', theirs);
        const bytes = content(SMALL, 22);
        const { opened, hash } = await finished(store, bytes, 'name.txt');
        const placed = await opened.commit(['name.txt'], hash);
        expect(placed.path).not.toBe('name.txt');
        expect(placed.deduplicated).toBe(false);
        expect((await medium.read(placed.path))?.equals(bytes)).toBe(true);
        expect((await medium.read('name.txt'))?.equals(theirs)).toBe(true);
        expect(await medium.list()).toEqual(['name.txt', placed.path].sort());
      });

      it('under overwrite, a taken name is replaced', async () => {
        const { store, medium } = await create({ onConflict: 'overwrite' });
        await medium.put('name.txt', content(SMALL, 23));
        const bytes = content(SMALL + 1, 24);
        const { opened, hash } = await finished(store, bytes, 'name.txt');
        expect((await opened.commit(['name.txt'], hash)).path).toBe('name.txt');
        expect((await medium.read('name.txt'))?.equals(bytes)).toBe(true);
        expect(await medium.list()).toEqual(['name.txt']);
      });

      it.each([
        ['small', SMALL],
        ['large', LARGE],
      ])('identical %s content under a taken name is not stored twice', async (_what, size) => {
        const { store, medium } = await create({ onConflict: 'rename' });
        const bytes = content(size, 25);
        await medium.put('same.bin', bytes);
        const { opened, hash } = await finished(store, bytes, 'same.bin');
        const placed = await opened.commit(['same.bin'], hash);
        expect(placed).toMatchObject({ path: 'same.bin', deduplicated: true });
        expect(await medium.list()).toEqual(['same.bin']);
        expect(await store.unchanged(placed.path, placed.identity)).toBe(true);
      });
    });

    describe('unchanged', () => {
      it('is true after the commit, false once the file is modified', async () => {
        const { store, medium } = await create();
        const placed = await upload(store, content(SMALL, 26), 'sealed.bin');
        expect(await store.unchanged(placed.path, placed.identity)).toBe(true);
        await sleep(20); // past the clock's granularity: a change must show in the times
        await medium.modify(placed.path);
        expect(await store.unchanged(placed.path, placed.identity)).toBe(false);
      });

      it('is false once the file is replaced by another with the same bytes, or gone', async () => {
        const { store, medium } = await create();
        const placed = await upload(store, content(SMALL, 27), 'swapped.bin');
        await sleep(20);
        await medium.replace(placed.path);
        expect(await store.unchanged(placed.path, placed.identity)).toBe(false);
        expect(await store.unchanged('never-there.bin', placed.identity)).toBe(false);
        expect(await store.unchanged('../outside.bin', placed.identity)).toBe(false);
      });
    });

    describe('recorded uploads (open with record, resume, keptUntil)', () => {
      it('resume finds nothing for a key never recorded, and makes nothing', async () => {
        const { store, medium } = await create({ partialLimits: { maxPartialsPerPeer: 1 } });
        const bytes = content(LARGE, 40);
        const key = await keyOf(bytes, 'never.bin');
        expect(await store.resume(key, { peer: PEER })).toBeUndefined();
        expect(await store.resume(await keyOf(content(SMALL, 41), 'small.bin'), { peer: PEER })).toBeUndefined();
        // Nothing was counted against the peer either: its one upload can still be made.
        const opened = await store.open(key, { peer: PEER });
        expect(opened.offset).toBe(0);
        await opened.discard();
        expect(await medium.list()).toEqual([]);
      });

      it('a recorded upload is found at 0 once let go, whatever its size; discarded, it is gone', async () => {
        const { store } = await create();
        for (const size of [0, SMALL, LARGE]) {
          const key = await keyOf(content(size, 42), `recorded-${size}.bin`);
          const made = await store.open(key, { peer: PEER, record: true });
          expect(made.offset).toBe(0);
          expect(made.resumable).toBe(true);
          await made.abandon();
          const found = await store.resume(key, { peer: PEER });
          expect(found?.offset).toBe(0);
          await found!.discard();
          expect(await store.resume(key, { peer: PEER })).toBeUndefined();
        }
      });

      it('a recorded small upload whose body ended is resumed at its size, and commits', async () => {
        const { store, medium } = await create();
        const bytes = content(SMALL, 43);
        const key = await keyOf(bytes, 'ended-small.bin');
        const made = await store.open(key, { peer: PEER, record: true });
        const writer = await made.append(0, SMALL);
        await writeAll(writer, bytes);
        await writer.end();
        await made.abandon();
        const found = (await store.resume(key, { peer: PEER }))!;
        expect(found.offset).toBe(SMALL);
        const rest = await found.append(SMALL, 0);
        await found.commit(['ended-small.bin'], await rest.end());
        expect((await medium.read('ended-small.bin'))?.equals(bytes)).toBe(true);
        expect(await store.resume(key, { peer: PEER })).toBeUndefined();
      });

      it('resume takes a held upload over, as open does, and sees what it kept', async () => {
        const { store } = await create();
        const bytes = content(LARGE, 44);
        const key = await keyOf(bytes, 'held-resume.bin');
        const first = await store.open(key, { peer: PEER, record: true });
        const writer = await first.append(0, LARGE);
        await writeAll(writer, bytes.subarray(0, CUT));
        first.onRevoked(() => void first.abandon());
        const second = (await store.resume(key, { peer: PEER }))!;
        expect(first.revoked.aborted).toBe(true);
        expect(second.offset).toBe(CUT);
        await second.abandon();
      });

      it('keptUntil tells when expire() may first delete what is kept: not a moment before', async () => {
        const { store } = await create();
        const ttl = 24 * 3600_000;
        const small = await keyOf(content(SMALL, 45), 'until-small.bin');
        const large = await keyOf(content(LARGE, 46), 'until-large.bin');
        const unrecorded = await store.open(await keyOf(content(SMALL, 47), 'nothing.bin'), { peer: PEER });
        expect(unrecorded.keptUntil(ttl)).toBeUndefined();
        await unrecorded.abandon();
        const before = Date.now();
        const tiny = await store.open(small, { peer: PEER, record: true });
        const until = tiny.keptUntil(ttl)!;
        // A recorded upload holding little may go well before the TTL (never after it).
        expect(until).toBeGreaterThanOrEqual(before - 2000);
        expect(until).toBeLessThanOrEqual(Date.now() + ttl);
        await tiny.abandon();
        const big = await store.open(large, { peer: PEER, record: true });
        const bytes = content(LARGE, 46);
        await writeAll(await big.append(0, LARGE), bytes.subarray(0, CUT));
        await big.abandon();
        const bigAgain = (await store.resume(large, { peer: PEER }))!;
        const bigUntil = bigAgain.keptUntil(ttl)!;
        await bigAgain.abandon();
        const first = Math.min(until, bigUntil);
        expect(await store.expire(ttl, first - 1)).toEqual([]);
        expect((await store.expire(ttl, until)).length).toBeGreaterThan(0);
        expect(await store.resume(small, { peer: PEER })).toBeUndefined();
        if (bigUntil > until) {
          const still = await store.resume(large, { peer: PEER });
          expect(still?.offset).toBe(CUT);
          await still!.abandon();
        }
        expect((await store.expire(ttl, bigUntil)).length).toBeGreaterThan(0);
        expect(await store.resume(large, { peer: PEER })).toBeUndefined();
      });
    });

    describe('expire', () => {
      it('deletes uploads left untouched for the TTL, never those held', async () => {
        const { store } = await create();
        const bytes = content(LARGE, 28);
        const left = await keyOf(bytes, 'left.bin');
        const held = await keyOf(bytes, 'held.bin');
        await leave(store, left, bytes, CUT);
        const holding = await store.open(held, { peer: PEER });
        await writeAll(await holding.append(0, LARGE), bytes.subarray(0, CUT));
        const ttl = 24 * 3600_000;
        expect(await store.expire(ttl)).toEqual([]);
        expect((await store.expire(ttl, Date.now() + 2 * ttl)).length).toBeGreaterThan(0);
        expect(await store.expire(ttl, Date.now() + 2 * ttl)).toEqual([]);
        const again = await store.open(left, { peer: PEER });
        expect(again.offset).toBe(0);
        await again.abandon();
        await holding.abandon();
        const resumed = await store.open(held, { peer: PEER });
        expect(resumed.offset).toBe(CUT);
        await resumed.abandon();
        expect(store.sweepIntervalMs).toBeGreaterThan(0);
      });
    });

    describe('listPartials', () => {
      const ttl = 24 * 3600_000;

      it('lists nothing for a new store', async () => {
        const { store } = await create();
        expect(await store.listPartials(ttl)).toEqual({ partials: [], unreadable: [], truncated: false });
      });

      it('lists each upload kept: name, bytes held of its size, kind, peer, times; expire() deletes it at expiresAt, not a moment before', async () => {
        const { store } = await create();
        const bytes = content(LARGE, 50);
        const before = Date.now();
        await leave(store, await keyOf(bytes, 'list/left.bin'), bytes, CUT);
        const recorded = await store.open(await keyOf(content(SMALL, 51), 'list/recorded.bin', OWNER_B), { peer: OTHER_PEER, record: true });
        await recorded.abandon();
        const holding = await store.open(await keyOf(content(LARGE, 52), 'list/held.bin'), { peer: PEER });
        await writeAll(await holding.append(0, LARGE), content(LARGE, 52).subarray(0, CUT));
        // Committed and small uploads are not kept, so not listed.
        await upload(store, content(LARGE, 53), 'list/placed.bin');
        await upload(store, content(SMALL, 54), 'list/small.bin');
        const { partials, unreadable, truncated } = await store.listPartials(ttl);
        expect(unreadable).toEqual([]);
        expect(truncated).toBe(false);
        // What an upload in use holds is what reached the medium so far (a store may buffer).
        const held0 = partials[0]!.bytes;
        expect(held0).toBeGreaterThanOrEqual(0);
        expect(held0).toBeLessThanOrEqual(CUT);
        expect(partials.map((p) => [p.name, p.bytes, p.size, p.kind, p.peer])).toEqual([
          ['list/held.bin', held0, LARGE, 'send', PEER],
          ['list/left.bin', CUT, LARGE, 'send', PEER],
          ['list/recorded.bin', 0, SMALL, 'tus', OTHER_PEER],
        ]);
        const [held, left, rec] = partials as [PartialUpload, PartialUpload, PartialUpload];
        expect(left.owner).toBe(OWNER_A);
        expect(rec.owner).toBe(OWNER_B);
        for (const partial of partials) {
          expect(partial.createdAt).toBeGreaterThanOrEqual(before - 2000);
          expect(partial.lastWriteAt).toBeGreaterThanOrEqual(partial.createdAt! - 2000);
          expect(partial.lastWriteAt).toBeLessThanOrEqual(Date.now() + 1000);
          expect(partial.expiresAt).toBeGreaterThan(partial.lastWriteAt);
          expect(partial.expiresAt).toBeLessThanOrEqual(partial.lastWriteAt + ttl);
        }
        // In use: said where the store can tell, never the other way round.
        if (held.inUse !== undefined) expect([held.inUse, left.inUse, rec.inUse]).toEqual([true, false, false]);
        await holding.abandon();
        const names = async () => (await store.listPartials(ttl)).partials.map((p) => p.name);
        const [first, last] = [rec, left].sort((a, b) => a.expiresAt - b.expiresAt) as [PartialUpload, PartialUpload];
        await store.expire(ttl, first.expiresAt - 1);
        expect(await names()).toEqual(expect.arrayContaining([first.name, last.name]));
        await store.expire(ttl, first.expiresAt);
        expect(await names()).not.toContain(first.name);
        await store.expire(ttl, last.expiresAt);
        expect(await names()).not.toContain(last.name);
      });
    });

    describe('orphans (a source that changed: the same name sent again with another size)', () => {
      it('a commit deletes what is kept of the same owner’s upload of the name with another size; another owner’s, one in use and other names stay', async () => {
        const { store } = await create();
        const old = content(LARGE, 60);
        const oldKey = await keyOf(old, 'orphan.bin');
        await leave(store, oldKey, old, CUT);
        const othersKey = await keyOf(old, 'orphan.bin', OWNER_B);
        await leave(store, othersKey, old, CUT);
        const otherName = await keyOf(old, 'another.bin');
        await leave(store, otherName, old, CUT);
        const inUse = content(LARGE + 1, 61);
        const inUseKey = await keyOf(inUse, 'orphan.bin');
        const holding = await store.open(inUseKey, { peer: PEER });
        await writeAll(await holding.append(0, inUse.length), inUse.subarray(0, CUT));
        const placed = await upload(store, content(LARGE + 2, 62), 'orphan.bin');
        expect(placed.path).toBe('orphan.bin');
        const left = (await store.listPartials(24 * 3600_000)).partials.map((p) => [p.name, p.owner, p.size]);
        expect(left).toEqual([
          ['another.bin', OWNER_A, LARGE],
          ['orphan.bin', OWNER_A, LARGE + 1],
          ['orphan.bin', OWNER_B, LARGE],
        ].sort((a, b) => (a[0] === b[0] ? (a[2] as number) - (b[2] as number) || 0 : a[0]! < b[0]! ? -1 : 1)));
        const again = await store.open(oldKey, { peer: PEER });
        expect(again.offset).toBe(0);
        await again.discard();
        for (const [key, owner] of [[othersKey, OWNER_B], [otherName, OWNER_A]] as const) {
          const kept = await store.open({ ...key, owner }, { peer: PEER });
          expect(kept.offset).toBe(CUT);
          await kept.abandon();
        }
        await holding.abandon();
        const resumed = await store.open(inUseKey, { peer: PEER });
        expect(resumed.offset).toBe(CUT);
        await resumed.abandon();
      });

      it('a commit of a small file deletes the kept upload of its name with another size too; a refused commit deletes nothing', async () => {
        const { store } = await create({ onConflict: 'reject' });
        const old = content(LARGE, 63);
        const oldKey = await keyOf(old, 'shrunk.txt');
        await leave(store, oldKey, old, CUT);
        await upload(store, content(SMALL, 64), 'taken.txt');
        const other = content(LARGE, 65);
        const otherKey = await keyOf(other, 'taken.txt');
        await leave(store, otherKey, other, CUT);
        // Refused (the name is taken): the partial of the other size stays.
        await expectFtError(upload(store, content(SMALL, 66), 'taken.txt'), 'CONFLICT');
        const kept = await store.open(otherKey, { peer: PEER });
        expect(kept.offset).toBe(CUT);
        await kept.abandon();
        await upload(store, content(SMALL, 67), 'shrunk.txt');
        const gone = await store.open(oldKey, { peer: PEER });
        expect(gone.offset).toBe(0);
        await gone.discard();
      });
    });

    describe('late size (streams), where the store has it', () => {
      const streamKey = (filename: string): UploadKey => ({ owner: OWNER_A, filename, size: undefined });

      it('opens a stream at 0, takes bytes of no announced length, declares the size at end(), commits', async () => {
        const { store, medium } = await create();
        if (!store.capabilities.lateSize) return;
        const bytes = content(LARGE, 41);
        const opened = await store.open(streamKey('stream.bin'), { peer: PEER });
        expect([opened.offset, opened.resumable]).toEqual([0, false]);
        const writer = await opened.append(0, undefined);
        await writeAll(writer, bytes, 7 * KiB);
        expect(writer.size).toBe(LARGE);
        const hash = await writer.end(LARGE);
        expect(hash).toBe(await hashBytes(bytes));
        expect((await opened.commit(['stream.bin'], hash)).path).toBe('stream.bin');
        expect((await medium.read('stream.bin'))?.equals(bytes)).toBe(true);
      });

      it('a small stream and an empty one commit too; a wrong hash keeps nothing', async () => {
        const { store, medium } = await create();
        if (!store.capabilities.lateSize) return;
        for (const [name, bytes] of [['small.bin', content(SMALL, 42)], ['empty.bin', Buffer.alloc(0)]] as const) {
          const opened = await store.open(streamKey(name), { peer: PEER });
          const writer = await opened.append(0, undefined);
          await writeAll(writer, bytes);
          await opened.commit([name], await writer.end(bytes.length));
          expect(await medium.read(name)).toEqual(bytes);
        }
        const wrong = await store.open(streamKey('wrong.bin'), { peer: PEER });
        const writer = await wrong.append(0, undefined);
        await writeAll(writer, content(LARGE, 43));
        await writer.end(LARGE);
        await expectFtError(wrong.commit(['wrong.bin'], await hashBytes(Buffer.from('other'))), 'HASH_MISMATCH');
        expect(await medium.list()).toEqual(['empty.bin', 'small.bin']);
      });

      it('a stream abandoned mid-way keeps nothing: never resumed, never placed', async () => {
        const { store, medium } = await create();
        if (!store.capabilities.lateSize) return;
        const opened = await store.open(streamKey('cut.bin'), { peer: PEER });
        await writeAll(await opened.append(0, undefined), content(LARGE, 44));
        // Not an upload kept for resume, so not listed either, held or not.
        expect((await store.listPartials(3600_000)).partials).toEqual([]);
        await opened.abandon();
        expect(await store.resume(streamKey('cut.bin'), { peer: PEER })).toBeUndefined();
        const again = await store.open(streamKey('cut.bin'), { peer: PEER });
        expect(again.offset).toBe(0);
        await again.abandon();
        expect(await medium.list()).toEqual([]);
        expect(await store.expire(1, Date.now() + 3600_000)).toEqual([]);
      });
    });

    describe('metadata', () => {
      const ms = (ns: bigint) => Number(ns / 1_000_000n);

      it.each([
        ['after 1970', 1_700_000_000_123_000_000n],
        ['before 1970', -86_400_500_000_000n],
      ])('commit gives the file its modification time %s (to the millisecond at least)', async (_, mtimeNs) => {
        const { store, medium } = await create();
        if (!store.capabilities.metadata) return;
        for (const [name, size] of [['small.bin', SMALL], ['large.bin', LARGE]] as const) {
          const placed = await upload(store, content(size, 3), name, OWNER_A, { mtimeNs });
          expect(await medium.entry(placed.path)).toMatchObject({ kind: 'file', mtimeMs: ms(mtimeNs) });
          // What a receipt records is the file as placed, time included: unchanged() holds.
          expect(await store.unchanged(placed.path, placed.identity)).toBe(true);
        }
      });

      it('commit applies at most the 0o777 bits of a mode, less the umask; without one the mode is the store\'s own', async () => {
        const { store, medium } = await create({ umask: 0o027 });
        if (!store.capabilities.metadata) return;
        const plain = await upload(store, content(SMALL, 4), 'plain.bin');
        const own = await medium.entry(plain.path);
        for (const [name, size] of [['suid.bin', SMALL], ['suid-large.bin', LARGE]] as const) {
          const placed = await upload(store, content(size, 5), name, OWNER_A, { mode: 0o4777 });
          expect(await medium.entry(placed.path)).toMatchObject({ kind: 'file', mode: 0o750 });
        }
        const kept = await upload(store, content(SMALL, 6), 'kept.bin', OWNER_A, { mode: 0o640 });
        expect(await medium.entry(kept.path)).toMatchObject({ mode: 0o640 });
        // Without the owner's read bit, a receiver not running as root could not place it (EACCES).
        for (const [name, mode] of [['write-only.bin', 0o200], ['none.bin', 0]] as const) {
          const placed = await upload(store, content(SMALL, 7), name, OWNER_A, { mode });
          expect(await medium.entry(placed.path)).toMatchObject({ mode: mode | 0o400 });
        }
        expect(own).toMatchObject({ kind: 'file' });
        expect((own as { mode: number }).mode & 0o7000).toBe(0);
      });

      it('makeFolder creates nested folders; one already there is fine', async () => {
        const { store, medium } = await create();
        if (!store.capabilities.metadata) return;
        expect(await store.makeFolder(['a', 'b', 'c'])).toBe('a/b/c');
        expect(await medium.entry('a/b/c')).toEqual({ kind: 'folder' });
        expect(await store.makeFolder(['a', 'b', 'c'])).toBe('a/b/c');
        expect(await store.makeFolder(['a'])).toBe('a');
        expect(await medium.list()).toEqual([]);
        // A file can go into it afterwards, as into any folder.
        expect((await upload(store, content(SMALL, 7), 'a/b/c/f.bin')).path).toBe('a/b/c/f.bin');
      });

      it.each(['reject', 'overwrite'] as const)('makeFolder under %s refuses a file where a folder should be, and leaves it', async (onConflict) => {
        const { store, medium } = await create({ onConflict });
        if (!store.capabilities.metadata) return;
        await medium.put('x/file', Buffer.from('mine'));
        await expectFtError(store.makeFolder(['x', 'file']), 'CONFLICT');
        await expectFtError(store.makeFolder(['x', 'file', 'below']), 'CONFLICT');
        expect((await medium.read('x/file'))?.toString()).toBe('mine');
      });

      it('makeFolder under rename gives a variant where a file has the name', async () => {
        const { store, medium } = await create();
        if (!store.capabilities.metadata) return;
        await medium.put('x/file', Buffer.from('mine'));
        const made = await store.makeFolder(['x', 'file']);
        expect(made).toMatch(/^x\/file \(/);
        expect(await medium.entry(made)).toEqual({ kind: 'folder' });
        expect((await medium.read('x/file'))?.toString()).toBe('mine');
      });
    });

    describe('capabilities', () => {
      it('declares what it can do, and freeSpace answers accordingly', async () => {
        const { store } = await create();
        const { atomicNoReplace, freeSpace, lateSize, durableUploads, metadata } = store.capabilities;
        for (const value of [atomicNoReplace, freeSpace, lateSize, durableUploads, metadata]) expect(typeof value).toBe('boolean');
        const free = await store.freeSpace();
        if (freeSpace) expect(free === undefined || (Number.isSafeInteger(free) && free >= 0)).toBe(true);
        else expect(free).toBeUndefined();
        expect(typeof store.privateLocation).toBe('string');
        expect(store.privateLocation.length).toBeGreaterThan(0);
      });
    });
  });
}
