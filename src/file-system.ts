import nodeFs, { promises as nodeFsPromises, type Stats } from 'node:fs';

type AsyncCalls = Pick<typeof nodeFsPromises, 'open' | 'readFile' | 'writeFile'>;

/**
 * Metadata calls (and whole reads of small files) are synchronous: each is one system call of
 * a microsecond or two, where an asynchronous call costs 10–25 µs of the event loop's time in
 * thread-pool hand-offs. With thousands of small files that difference is the transfer rate.
 * Anything that can take long (streaming a large body, fsync) stays asynchronous; `fdatasync`
 * is here in its callback form, for files written with the synchronous calls.
 */
type SyncCalls = Pick<
  typeof nodeFs,
  | 'lstatSync'
  | 'statSync'
  | 'readdirSync'
  | 'mkdirSync'
  | 'linkSync'
  | 'renameSync'
  | 'unlinkSync'
  | 'openSync'
  | 'fstatSync'
  | 'readSync'
  | 'writevSync'
  | 'ftruncateSync'
  | 'closeSync'
  | 'fdatasync'
  // Folder handles of the inbox (folder-tree.ts): reading where a handle is now, syncing it.
  | 'readlinkSync'
  | 'fsync'
  // The partial folder: streamed listings (bounded memory) and tightening its mode through a checked handle.
  | 'opendirSync'
  | 'fchmodSync'
  // File metadata a sender asked for, set on the open file before it is placed.
  | 'futimesSync'
>;

/**
 * The slice of `node:fs` that ft's storage and transfer code uses. Passing another
 * implementation (memfs in tests, see fileSystemOf) runs the same code on another file system.
 */
export type FileSystem = AsyncCalls &
  SyncCalls & {
    realpathSync(path: string): string;
    /** Optional: free-space checks are skipped where the file system cannot tell. */
    statfs?: typeof nodeFsPromises.statfs;
  };

export type FileHandle = Awaited<ReturnType<FileSystem['open']>>;

/** A written file not yet durable: what a FileHandle offers for the last steps. */
export interface OpenFile {
  sync(): Promise<void>;
  close(): Promise<void>;
  /**
   * Sets the modification time (`mtime` in seconds as futimes takes them; the access time
   * becomes now) and the mode, on the open file; sync() then makes them durable too.
   */
  setMetadata(metadata: { mtime?: string; mode?: number }): Promise<void>;
}

/**
 * A FileSystem from anything shaped like `node:fs` (its calls and its `promises`), such as
 * memfs's `createFsFromVolume(vol)`, whose typings differ in details such as Stats fields.
 */
export function fileSystemOf(shapedLikeNodeFs: object): FileSystem {
  const fs = shapedLikeNodeFs as typeof nodeFs;
  const { open, readFile, writeFile, statfs } = fs.promises;
  const bound = <T extends (...args: never[]) => unknown>(call: T, self: object): T => call.bind(self) as T;
  return {
    open: bound(open, fs.promises),
    readFile: bound(readFile, fs.promises),
    writeFile: bound(writeFile, fs.promises),
    ...(statfs ? { statfs: bound(statfs, fs.promises) } : {}),
    lstatSync: bound(fs.lstatSync, fs),
    statSync: bound(fs.statSync, fs),
    // One realpath() system call instead of an lstat per path component.
    realpathSync: bound(fs.realpathSync.native ?? fs.realpathSync, fs),
    readdirSync: bound(fs.readdirSync, fs),
    mkdirSync: bound(fs.mkdirSync, fs),
    linkSync: bound(fs.linkSync, fs),
    renameSync: bound(fs.renameSync, fs),
    unlinkSync: bound(fs.unlinkSync, fs),
    openSync: bound(fs.openSync, fs),
    fstatSync: bound(fs.fstatSync, fs),
    readSync: bound(fs.readSync, fs),
    writevSync: bound(fs.writevSync, fs),
    ftruncateSync: bound(fs.ftruncateSync, fs),
    closeSync: bound(fs.closeSync, fs),
    fdatasync: bound(fs.fdatasync, fs),
    readlinkSync: bound(fs.readlinkSync, fs),
    fsync: bound(fs.fsync, fs),
    opendirSync: bound(fs.opendirSync, fs),
    fchmodSync: bound(fs.fchmodSync, fs),
    futimesSync: bound(fs.futimesSync, fs),
  };
}

/* Identities, shared by the sender (has a source changed?) and the local store (is a stored file unchanged?). */

/** What identifies a file's state: equal identities mean the bytes were not changed in between. */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

export function identityOf(stat: Stats): FileIdentity {
  return { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs };
}

export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}


export const nodeFileSystem: FileSystem = fileSystemOf(nodeFs);

/** Large reads keep the number of asynchronous file operations (the real cost in Node) low. */
export const READ_BLOCK_BYTES = 1024 * 1024;

export function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/** lstat, or undefined when nothing has that name (without an exception: they cost more than the call). */
export function lstatIfExists(fs: FileSystem, file: string): nodeFs.Stats | undefined {
  try {
    return fs.lstatSync(file, { throwIfNoEntry: false });
  } catch (error) {
    // A file system that does not know the option throws instead.
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/**
 * Feeds `length` bytes of an open file from `start` to `consume`, in large blocks, reading the
 * next block while the current one is consumed (and awaited, when `consume` returns a promise:
 * a slow consumer slows the reads, so at most two blocks are in memory). By default two
 * buffers take turns, so `consume` must not keep the block it is given; with `keepsBlocks`
 * each block is a buffer of its own (a socket holds on to what it was given until it is sent).
 * Resolves with the bytes read: fewer than `length` when the file ends first.
 */
export async function readRange(
  handle: FileHandle,
  start: number,
  length: number,
  consume: (block: Buffer) => void | Promise<void>,
  options: { keepsBlocks?: boolean } = {},
): Promise<number> {
  const size = Math.min(READ_BLOCK_BYTES, Math.max(length, 1));
  const buffers = options.keepsBlocks ? undefined : [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  const read = (turn: number, at: number) => {
    const into = buffers?.[turn] ?? Buffer.allocUnsafe(Math.min(size, length - at));
    return handle.read(into, 0, Math.min(size, length - at), start + at).then(({ bytesRead }) => into.subarray(0, bytesRead));
  };
  let done = 0;
  let turn = 0;
  let next = length > 0 ? read(0, 0) : undefined;
  while (next) {
    const block = await next;
    if (block.length === 0) break;
    done += block.length;
    turn ^= 1;
    next = done < length ? read(turn, done) : undefined;
    try {
      await consume(block);
    } catch (error) {
      await next?.catch(() => undefined);
      throw error;
    }
  }
  return done;
}

/** Hashes `length` bytes of an open file from `start` (readRange into the hasher); resolves with the bytes read. */
export function hashRange(
  handle: FileHandle,
  start: number,
  length: number,
  hasher: { update(data: Uint8Array): void },
  signal?: AbortSignal,
): Promise<number> {
  return readRange(handle, start, length, (block) => {
    signal?.throwIfAborted();
    hasher.update(block);
  });
}
