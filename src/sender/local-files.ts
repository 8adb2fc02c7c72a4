import nodeFs, { constants, type BigIntStats, type Stats } from 'node:fs';
import path from 'node:path';
import { FtError } from '../errors.js';
import { createHasher, hashBytes } from '../hashing.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { hashRange, nodeFileSystem, type FileHandle, type FileSystem } from '../file-system.js';
import type { FileIdentity, HashCache } from './hash-cache.js';

/** A local file to send and the name it gets on the receiver. */
export interface LocalFile {
  /** The path as the user gave it (or under the directory they gave). */
  path: string;
  /** Relative, `/`-separated name on the receiver. */
  name: string;
  size: number;
  mtimeMs: number;
  /** The modification time to the nanosecond, from the open file when it was hashed (the receiver keeps it). */
  mtimeNs?: bigint;
  /** The permission bits (0o7777) of the open file when it was hashed: sent with preserveMode. */
  mode?: number;
  /** Filled by hashLocalFile; empty while deferred (the hash is then computed as the body is sent). */
  hash: string;
  /**
   * What the file was when hashed (or, for a large file, deferred): to notice a change, to cache
   * the hash, and to find the receipt of an earlier upload of it.
   */
  identity?: FileIdentity;
  /**
   * A small file's bytes, kept from hashing so the body is sent without reading it again (and is
   * exactly the content that was hashed). Dropped once sent, with dropContent.
   */
  content?: Buffer;
  /** The budget `content` counts against, given back by dropContent. */
  keptIn?: KeepBudget;
  /** The file the listing saw (device and inode): a file read later must be this one. */
  listed?: { dev: number; ino: number };
  /**
   * Found inside a folder, not through a symbolic link: it is opened without following one, so
   * an entry swapped for a link after the listing is not followed.
   */
  noFollow?: boolean;
  /** Where the file really is, when every step from the folder given was a real folder (see openListed). */
  realPath?: string;
}

export interface CollectOptions {
  /** Follow symbolic links found inside folders (to files and to folders). @default false */
  followSymlinks?: boolean;
  /** An entry inside a folder that is not sent, and why (a symbolic link not followed, a cycle). */
  onIgnored?: (entry: { path: string; name: string; reason: string }) => void;
}

/** Why a symbolic link inside a folder is left out by default. */
export const SYMLINK_NOT_FOLLOWED = 'symbolic link, not followed (use --follow-symlinks)';

/** Files up to this size are read in one piece and kept for sending. */
export const KEEP_CONTENT_BYTES = 1024 * 1024;

/** A folder with nothing in it to send: announced on its own, so that it arrives too. */
export interface LocalFolder {
  path: string;
  /** Relative, `/`-separated name on the receiver. */
  name: string;
}

/** A path given to send that cannot be: it fails alone, the others are still sent. */
export interface PathProblem {
  path: string;
  /** The name it would have had on the receiver. */
  name: string;
  error: FtError;
}

/**
 * Expands the paths to send: a file is sent under its base name, a directory as its base name
 * plus every regular file below it. Paths given are followed when they are symbolic links;
 * links inside folders are not, unless `followSymlinks` (whoever can write into a folder
 * could otherwise make a send of it ship any file the user can read). Followed links to
 * folders that contain them (cycles) are left out. A path that is missing, unreadable or not a
 * file or folder is a problem of that path only.
 */
export function collectFiles(
  paths: string[],
  fs: FileSystem,
  options: CollectOptions = {},
): { files: LocalFile[]; folders: LocalFolder[]; problems: PathProblem[] } {
  const files: LocalFile[] = [];
  const folders: LocalFolder[] = [];
  const problems: PathProblem[] = [];
  for (const given of paths) {
    const base = path.basename(path.resolve(given));
    const problem = (why: string, cause?: unknown) =>
      problems.push({ path: given, name: base, error: new FtError('LOCAL_FILE', `cannot send ${escapeForDisplay(given)}: ${why}`, { path: given }, { cause }) });
    let stat: Stats;
    try {
      stat = fs.statSync(given);
    } catch (error) {
      problem(describeFsError(error), error);
      continue;
    }
    if (stat.isFile()) {
      files.push({ path: given, name: base, size: stat.size, mtimeMs: stat.mtimeMs, hash: '', listed: { dev: stat.dev, ino: stat.ino } });
    } else if (stat.isDirectory()) {
      const realPath = canCheckOpenPaths(fs) ? fs.realpathSync(given) : undefined;
      const before = files.length;
      const foldersBefore = folders.length;
      try {
        walk(fs, { dir: given, name: base, realPath, ancestors: new Set([identityKey(stat)]) }, { files, folders }, options);
      } catch (error) {
        // Half a folder would look complete on the receiver: the whole folder fails.
        files.length = before;
        folders.length = foldersBefore;
        const where = (error as NodeJS.ErrnoException).path;
        problem(where && where !== given ? `cannot read ${escapeForDisplay(where)}: ${describeFsError(error)}` : describeFsError(error), error);
      }
    } else {
      problem('not a regular file or folder');
    }
  }
  return { files, folders, problems };
}

const FS_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EIO: 'input/output error (a failing disk?)',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files',
  EBUSY: 'the file is busy',
  ESTALE: 'stale network file handle',
};

/** A file-system error in words (`permission denied`), without Node's `EACCES: …, open '…'`. */
export function describeFsError(error: unknown): string {
  const { code, message } = (error ?? {}) as NodeJS.ErrnoException;
  if (code && FS_ERRORS[code]) return FS_ERRORS[code];
  const text = String(message ?? error);
  return text.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*'$/s, '');
}

/** A read of a local file failed: a one-line error of that file, in words. */
export function localFileError(file: string, error: unknown): FtError {
  if (error instanceof FtError) return error;
  return new FtError('LOCAL_FILE', `cannot read ${escapeForDisplay(file)}: ${describeFsError(error)}`, { path: file }, { cause: error });
}

interface WalkFolder {
  dir: string;
  name: string;
  /** Undefined below a followed link, or where open paths cannot be checked. */
  realPath: string | undefined;
  /** The folders on the way down, to notice a followed link that leads back up. */
  ancestors: Set<string>;
}

/**
 * Lists the folder's files into `out.files`; a folder below which nothing is sent (empty, or
 * holding only what is left out) goes into `out.folders`, since no file's path implies it.
 */
function walk(fs: FileSystem, folder: WalkFolder, out: { files: LocalFile[]; folders: LocalFolder[] }, options: CollectOptions): void {
  const listedBefore = out.files.length + out.folders.length;
  walkEntries(fs, folder, out, options);
  if (out.files.length + out.folders.length === listedBefore) out.folders.push({ path: folder.dir, name: folder.name });
}

function walkEntries(fs: FileSystem, folder: WalkFolder, out: { files: LocalFile[]; folders: LocalFolder[] }, options: CollectOptions): void {
  const entries = fs.readdirSync(folder.dir) as string[];
  entries.sort();
  for (const entry of entries) {
    const full = path.join(folder.dir, entry);
    const name = `${folder.name}/${entry}`;
    const link = fs.lstatSync(full);
    const followed = link.isSymbolicLink();
    if (followed && !options.followSymlinks) {
      options.onIgnored?.({ path: full, name, reason: SYMLINK_NOT_FOLLOWED });
      continue;
    }
    const stat = followed ? followLink(fs, full) : link;
    if (!stat) continue;
    const realPath = followed || folder.realPath === undefined ? undefined : path.join(folder.realPath, entry);
    if (stat.isFile()) {
      const listed = { dev: stat.dev, ino: stat.ino };
      out.files.push({ path: full, name, size: stat.size, mtimeMs: stat.mtimeMs, hash: '', listed, noFollow: !followed, realPath });
    } else if (stat.isDirectory()) {
      const key = identityKey(stat);
      if (folder.ancestors.has(key)) {
        options.onIgnored?.({ path: full, name, reason: 'symbolic link to a folder that contains it, not followed' });
        continue;
      }
      walk(fs, { dir: full, name, realPath, ancestors: new Set(folder.ancestors).add(key) }, out, options);
    }
  }
}

const identityKey = (stat: Stats) => `${stat.dev}:${stat.ino}`;

/** What a symbolic link points to; a dangling or looping link is skipped. */
function followLink(fs: FileSystem, file: string): Stats | undefined {
  try {
    return fs.statSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Whether an open file's real path can be read back (Linux, the real file system): then a
 * folder on the way swapped for a symbolic link, which O_NOFOLLOW does not see (it concerns
 * the last component only), is noticed too.
 */
function canCheckOpenPaths(fs: FileSystem): boolean {
  return process.platform === 'linux' && fs.openSync === nodeFileSystem.openSync && nodeFs.existsSync('/proc/self/fd');
}

// Non-blocking, so a FIFO swapped in for the file cannot hang the process (or a thread-pool thread) in open().
const openFlags = (file: LocalFile) => constants.O_RDONLY | constants.O_NONBLOCK | (file.noFollow ? constants.O_NOFOLLOW : 0);

function openFailed(file: LocalFile, error: unknown): never {
  if ((error as NodeJS.ErrnoException).code === 'ELOOP' && file.noFollow) {
    throw new FtError('LOCAL_FILE', `${escapeForDisplay(file.path)} became a symbolic link after it was listed; not followed`, {}, { cause: error });
  }
  throw error;
}

/** The open file is the one listed: a regular file, the same device and inode, where it was listed. */
function checkListed(file: LocalFile, stat: Stats, fd: number): void {
  if (!stat.isFile()) throw new FtError('LOCAL_FILE', `${escapeForDisplay(file.path)} is no longer a regular file`);
  if (file.listed && (stat.dev !== file.listed.dev || stat.ino !== file.listed.ino)) {
    throw new FtError('FILE_CHANGED', `${escapeForDisplay(file.path)} was replaced after it was listed; run the command again`);
  }
  if (file.realPath === undefined) return;
  let opened: string;
  try {
    opened = nodeFs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return;
  }
  if (opened !== file.realPath) {
    throw new FtError('LOCAL_FILE', `${escapeForDisplay(file.path)} is no longer inside the folder given (a folder on the way was replaced); not sent`);
  }
}

/** Opens a listed file for reading with synchronous calls; see checkListed. */
function openListedSync(file: LocalFile, fs: FileSystem): { fd: number; stat: Stats } {
  let fd: number;
  try {
    fd = fs.openSync(file.path, openFlags(file));
  } catch (error) {
    openFailed(file, error);
  }
  try {
    const stat = fs.fstatSync(fd);
    checkListed(file, stat, fd);
    return { fd, stat };
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/**
 * Opens a listed file for reading: without following a symbolic link where the listing saw
 * none, and only if it is still the regular file that was listed (checked on the open file,
 * so nothing can be swapped in between). Every read of a file to send goes through here.
 */
export async function openListed(file: LocalFile, fs: FileSystem): Promise<{ handle: FileHandle; stat: Stats }> {
  const handle = await fs.open(file.path, openFlags(file)).catch((error: unknown) => openFailed(file, error));
  try {
    const stat = await handle.stat();
    checkListed(file, stat as Stats, handle.fd);
    return { handle, stat: stat as Stats };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * Hashes the whole file (XXH64), refreshing size and mtime from the open file so the hash and
 * the size announced describe the same content.
 */
export interface HashOptions {
  signal?: AbortSignal;
  /** Keep a small file's bytes in `content`. */
  keep?: boolean;
  /** Hashes of large files from earlier runs. */
  cache?: HashCache;
  /**
   * A large file not in the cache, and not changed lately, is not read now: its hash is left
   * empty, to be computed while its body is sent, so a first send reads it once.
   */
  defer?: boolean;
}

/**
 * A file written this recently may be being written still, in ways its size, mtime and ctime do
 * not show (writes through mmap to pages already dirty update them only after writeback, which
 * can take 30 s; writes within one clock tick leave them as they were). Such a file is hashed
 * before it is sent, so that a change between the two reads shows as a hash mismatch. mtime,
 * not ctime: a writer sets it, while renames, links and permission changes set only ctime.
 */
export const QUIET_BEFORE_DEFERRING_MS = 60_000;

export async function hashLocalFile(file: LocalFile, fs: FileSystem, options: HashOptions = {}): Promise<void> {
  const small = readSmallFile(file, fs);
  if (small) {
    const { stat } = small;
    const identity = { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs };
    Object.assign(file, { size: stat.size, mtimeMs: stat.mtimeMs, identity, hash: await hashBytes(small.content), ...small.metadata });
    file.content = options.keep ? small.content : undefined;
    return;
  }
  const hasher = await createHasher();
  const { handle, stat } = await openListed(file, fs);
  try {
    const identity = { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs };
    const precise = (await handle.stat({ bigint: true })) as BigIntStats;
    Object.assign(file, { size: stat.size, mtimeMs: stat.mtimeMs, identity, content: undefined, ...metadataOf(precise) });
    const cached = options.cache?.get(identity);
    const quiet = Date.now() - stat.mtimeMs >= QUIET_BEFORE_DEFERRING_MS;
    if (cached || (options.defer && quiet)) {
      file.hash = cached ?? '';
      return;
    }
    const read = await hashRange(handle, 0, stat.size, hasher, options.signal);
    if (read !== stat.size) throw new FtError('FILE_CHANGED', `${escapeForDisplay(file.path)} shrank while it was hashed`);
    file.hash = hasher.digest();
    options.cache?.set(identity, file.hash);
  } finally {
    await handle.close();
  }
}

type FileMetadata = Pick<LocalFile, 'mtimeNs' | 'mode'>;

/**
 * The time to the nanosecond and the permission bits, from a stat taken with `bigint` (a
 * number's milliseconds are a double, which cannot hold nanoseconds). A file system without
 * bigint stats gives the milliseconds.
 */
function metadataOf(stat: BigIntStats): FileMetadata {
  const mtimeNs = typeof stat.mtimeNs === 'bigint' ? stat.mtimeNs : BigInt(Math.trunc(Number(stat.mtimeMs))) * 1_000_000n;
  return { mtimeNs, mode: Number(stat.mode) & 0o7777 };
}

/**
 * A file of at most KEEP_CONTENT_BYTES, read whole with synchronous calls (four system calls
 * instead of four thread-pool round trips); undefined when the open file is larger.
 */
function readSmallFile(file: LocalFile, fs: FileSystem): { stat: Stats; content: Buffer; metadata: FileMetadata } | undefined {
  const { fd, stat } = openListedSync(file, fs);
  try {
    if (stat.size > KEEP_CONTENT_BYTES) return undefined;
    const metadata = metadataOf(fs.fstatSync(fd, { bigint: true }));
    const content = Buffer.allocUnsafe(stat.size);
    let read = 0;
    while (read < stat.size) {
      const bytes = fs.readSync(fd, content, read, stat.size - read, read);
      if (bytes === 0) throw new FtError('FILE_CHANGED', `${escapeForDisplay(file.path)} shrank while it was hashed`);
      read += bytes;
    }
    return { stat, content, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Bytes of small files' content kept in memory between hashing and sending, in all. Taken in
 * file order, waiting when it is spent (a file waits until earlier files, which the sender
 * sends first, have given theirs back), and given back as each file is sent: memory stays
 * bounded and every small file is read once.
 */
export class KeepBudget {
  private available: number;
  private readonly waiting: Array<{ bytes: number; grant: (granted: boolean) => void }> = [];
  private closed = false;

  constructor(readonly total: number) {
    this.available = total;
  }

  /** Resolves true once `bytes` are set aside; false when they never can be (over the total, or closed). */
  take(bytes: number): Promise<boolean> {
    if (this.tryTake(bytes)) return Promise.resolve(true);
    if (this.closed || bytes > this.total) return Promise.resolve(false);
    return new Promise((grant) => this.waiting.push({ bytes, grant }));
  }

  /** Sets `bytes` aside if that is possible now, without waiting (nor passing anyone waiting). */
  tryTake(bytes: number): boolean {
    if (this.closed || this.waiting.length > 0 || bytes > this.available) return false;
    this.available -= bytes;
    return true;
  }

  give(bytes: number): void {
    this.available += bytes;
    while (this.waiting.length > 0 && this.waiting[0]!.bytes <= this.available) {
      const { bytes: wanted, grant } = this.waiting.shift()!;
      this.available -= wanted;
      grant(true);
    }
  }

  /** The send is over: nobody waits any more (they go on without keeping). */
  close(): void {
    this.closed = true;
    for (const { grant } of this.waiting.splice(0)) grant(false);
  }

  /** Bytes set aside now (for tests). */
  get used(): number {
    return this.total - this.available;
  }
}

/** Frees a file's kept bytes (sent, skipped, failed, or to be read again) and gives them back to their budget. */
export function dropContent(file: LocalFile): void {
  if (file.content) file.keptIn?.give(file.content.length);
  file.content = undefined;
  file.keptIn = undefined;
}

/**
 * hashLocalFile, keeping a small file's bytes once `budget` has room for them, waiting for it
 * in the order of the calls (the order the sender sends in, so the room always comes).
 */
async function hashKeeping(file: LocalFile, fs: FileSystem, options: HashOptions, budget: KeepBudget): Promise<void> {
  dropContent(file);
  const reserved = file.size <= KEEP_CONTENT_BYTES ? file.size : -1;
  // Taken before the first await, so the order of the calls is the order of the turns.
  const keep = reserved >= 0 && (await budget.take(reserved));
  try {
    await hashLocalFile(file, fs, { ...options, keep });
  } finally {
    if (keep) {
      // The file may have grown or shrunk since it was listed: count what is really kept.
      const kept = file.content?.length ?? 0;
      budget.give(reserved - kept);
      if (file.content) file.keptIn = budget;
    }
  }
}

/**
 * Hashes every file, a few at a time (many small files are bound by the latency of each file
 * operation, not by bandwidth), calling `onHashed` as each is done, in any order. Small files
 * keep their bytes, waiting for room in `keepBudget` as files are sent.
 */
export async function hashLocalFiles(
  files: LocalFile[],
  fs: FileSystem,
  options: HashOptions & { keepBudget: KeepBudget; onHashed: (file: LocalFile, error?: unknown) => void },
): Promise<void> {
  const { keepBudget, onHashed, ...hashOptions } = options;
  let next = 0;
  const worker = async () => {
    while (next < files.length && !options.signal?.aborted) {
      const file = files[next++]!;
      try {
        await hashKeeping(file, fs, hashOptions, keepBudget);
        options.signal?.throwIfAborted();
        onHashed(file);
      } catch (error) {
        onHashed(file, options.signal?.aborted ? new FtError('ABORTED', 'send was cancelled') : error);
      }
    }
  };
  await Promise.all(Array.from({ length: HASH_CONCURRENCY }, worker));
  // Aborted: the files never reached are reported too, so nobody waits for them.
  for (const file of files.slice(next)) onHashed(file, new FtError('ABORTED', 'send was cancelled'));
}

const HASH_CONCURRENCY = 8;
