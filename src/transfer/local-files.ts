import { constants, type Stats } from 'node:fs';
import path from 'node:path';
import { FtError } from '../errors.js';
import { createHasher, hashBytes, type Hasher } from '../hashing.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { readRange, type FileSystem } from '../storage/file-system.js';
import type { FileIdentity, HashCache } from './hash-cache.js';

/** A local file to send and the name it gets on the receiver. */
export interface LocalFile {
  /** The path as the user gave it (or under the directory they gave). */
  path: string;
  /** Relative, `/`-separated name on the receiver. */
  name: string;
  size: number;
  mtimeMs: number;
  /** Filled by hashLocalFile; empty while deferred (the hash is then computed as the body is sent). */
  hash: string;
  /** Large files: what the file was when hashed or deferred, to notice a change and to cache the hash. */
  identity?: FileIdentity;
  /**
   * A small file's bytes, kept from hashing so the body is sent without reading it again (and is
   * exactly the content that was hashed). Dropped once sent.
   */
  content?: Buffer;
}

/** Files up to this size are read in one piece and kept for sending. */
export const KEEP_CONTENT_BYTES = 1024 * 1024;

/** A path given to send that cannot be: it fails alone, the others are still sent. */
export interface PathProblem {
  path: string;
  /** The name it would have had on the receiver. */
  name: string;
  error: FtError;
}

/**
 * Expands the paths to send: a file is sent under its base name, a directory as its base name
 * plus every regular file below it. Links to folders are not followed (no cycles). A path that
 * is missing, unreadable or not a file or folder is a problem of that path only.
 */
export function collectFiles(paths: string[], fs: FileSystem): { files: LocalFile[]; problems: PathProblem[] } {
  const files: LocalFile[] = [];
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
      files.push({ path: given, name: base, size: stat.size, mtimeMs: stat.mtimeMs, hash: '' });
    } else if (stat.isDirectory()) {
      const before = files.length;
      try {
        walk(fs, given, base, files);
      } catch (error) {
        // Half a folder would look complete on the receiver: the whole folder fails.
        files.length = before;
        const where = (error as NodeJS.ErrnoException).path;
        problem(where && where !== given ? `cannot read ${escapeForDisplay(where)}: ${describeFsError(error)}` : describeFsError(error), error);
      }
    } else {
      problem('not a regular file or folder');
    }
  }
  return { files, problems };
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

function walk(fs: FileSystem, dir: string, name: string, out: LocalFile[]): void {
  const entries = fs.readdirSync(dir) as string[];
  entries.sort();
  for (const entry of entries) {
    const full = path.join(dir, entry);
    const link = fs.lstatSync(full);
    const stat = link.isSymbolicLink() ? followLink(fs, full) : link;
    if (!stat) continue;
    if (stat.isFile()) out.push({ path: full, name: `${name}/${entry}`, size: stat.size, mtimeMs: stat.mtimeMs, hash: '' });
    else if (stat.isDirectory() && !link.isSymbolicLink()) walk(fs, full, `${name}/${entry}`, out);
  }
}

/** What a symbolic link points to; a dangling or looping link is skipped. */
function followLink(fs: FileSystem, file: string): Stats | undefined {
  try {
    return fs.statSync(file);
  } catch {
    return undefined;
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
  const small = readSmallFile(file.path, fs);
  if (small) {
    Object.assign(file, { size: small.stat.size, mtimeMs: small.stat.mtimeMs, hash: await hashBytes(small.content) });
    file.content = options.keep ? small.content : undefined;
    return;
  }
  const hasher = await createHasher();
  const handle = await fs.open(file.path, 'r');
  try {
    const stat = await handle.stat();
    const identity = { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs };
    Object.assign(file, { size: stat.size, mtimeMs: stat.mtimeMs, identity, content: undefined });
    const cached = options.cache?.get(identity);
    const quiet = Date.now() - stat.mtimeMs >= QUIET_BEFORE_DEFERRING_MS;
    if (cached || (options.defer && quiet)) {
      file.hash = cached ?? '';
      return;
    }
    const read = await readRange(handle, 0, stat.size, (block) => {
      options.signal?.throwIfAborted();
      hasher.update(block);
    });
    if (read !== stat.size) throw new FtError('FILE_CHANGED', `${escapeForDisplay(file.path)} shrank while it was hashed`);
    file.hash = hasher.digest();
    options.cache?.set(identity, file.hash);
  } finally {
    await handle.close();
  }
}

/**
 * A file of at most KEEP_CONTENT_BYTES, read whole with synchronous calls (four system calls
 * instead of four thread-pool round trips); undefined when the open file is larger.
 */
function readSmallFile(file: string, fs: FileSystem): { stat: Stats; content: Buffer } | undefined {
  // Non-blocking, so a FIFO swapped in for the file cannot hang the process in open().
  const fd = fs.openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new FtError('LOCAL_FILE', `${escapeForDisplay(file)} is no longer a regular file`);
    if (stat.size > KEEP_CONTENT_BYTES) return undefined;
    const content = Buffer.allocUnsafe(stat.size);
    let read = 0;
    while (read < stat.size) {
      const bytes = fs.readSync(fd, content, read, stat.size - read, read);
      if (bytes === 0) throw new FtError('FILE_CHANGED', `${escapeForDisplay(file)} shrank while it was hashed`);
      read += bytes;
    }
    return { stat, content };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Hashes every file, a few at a time (many small files are bound by the latency of each file
 * operation, not by bandwidth), calling `onHashed` as each is done, in any order. Small files
 * keep their bytes while `keepBudget` lasts.
 */
export async function hashLocalFiles(
  files: LocalFile[],
  fs: FileSystem,
  options: HashOptions & { keepBudget: number; onHashed: (file: LocalFile, error?: unknown) => void },
): Promise<void> {
  let budget = options.keepBudget;
  let next = 0;
  const worker = async () => {
    while (next < files.length && !options.signal?.aborted) {
      const file = files[next++]!;
      const keep = file.size <= KEEP_CONTENT_BYTES && file.size <= budget;
      if (keep) budget -= file.size;
      try {
        await hashLocalFile(file, fs, { ...options, keep });
        options.onHashed(file);
      } catch (error) {
        options.onHashed(file, error);
      }
    }
  };
  await Promise.all(Array.from({ length: HASH_CONCURRENCY }, worker));
  // Aborted: the files never reached are reported too, so nobody waits for them.
  for (const file of files.slice(next)) options.onHashed(file, new FtError('ABORTED', 'send was cancelled'));
}

const HASH_CONCURRENCY = 8;

/**
 * XXH64 of the first `length` bytes, to check a receiver's partial before resuming it; the
 * hasher can go on to take the rest of the file.
 */
export async function hashLocalPrefix(file: LocalFile, length: number, fs: FileSystem, signal?: AbortSignal): Promise<Hasher> {
  const hasher = await createHasher();
  if (file.content) {
    hasher.update(file.content.subarray(0, length));
    return hasher;
  }
  const handle = await fs.open(file.path, 'r');
  try {
    await readRange(handle, 0, length, (block) => {
      signal?.throwIfAborted();
      hasher.update(block);
    });
  } finally {
    await handle.close();
  }
  return hasher;
}
