import path from 'node:path';
import { FtError } from '../errors.js';
import { createHasher, hashBytes } from '../hashing.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { readRange, type FileSystem } from '../storage/file-system.js';
import type { HashCache } from './hash-cache.js';

/** A local file to send and the name it gets on the receiver. */
export interface LocalFile {
  /** The path as the user gave it (or under the directory they gave). */
  path: string;
  /** Relative, `/`-separated name on the receiver. */
  name: string;
  size: number;
  mtimeMs: number;
  /** Filled by hashLocalFile. */
  hash: string;
  /**
   * A small file's bytes, kept from hashing so the body is sent without reading it again (and is
   * exactly the content that was hashed). Dropped once sent.
   */
  content?: Buffer;
}

/** Files up to this size are read in one piece and kept for sending. */
export const KEEP_CONTENT_BYTES = 1024 * 1024;

/**
 * Expands the paths to send: a file is sent under its base name, a directory as its base name
 * plus every regular file below it. Links to folders are not followed (no cycles).
 */
export async function collectFiles(paths: string[], fs: FileSystem): Promise<LocalFile[]> {
  const files: LocalFile[] = [];
  for (const given of paths) {
    const stat = await fs.stat(given).catch((error: NodeJS.ErrnoException) => {
      const why = error.code === 'ENOENT' ? 'no such file or folder' : error.code === 'EACCES' ? 'permission denied' : error.message;
      throw new FtError('LOCAL_FILE', `cannot send ${escapeForDisplay(given)}: ${why}`, { path: given });
    });
    const base = path.basename(path.resolve(given));
    if (stat.isFile()) {
      files.push({ path: given, name: base, size: stat.size, mtimeMs: stat.mtimeMs, hash: '' });
    } else if (stat.isDirectory()) {
      await walk(fs, given, base, files);
    } else {
      throw new FtError('LOCAL_FILE', `cannot send ${escapeForDisplay(given)}: not a regular file or folder`, { path: given });
    }
  }
  return files;
}

async function walk(fs: FileSystem, dir: string, name: string, out: LocalFile[]): Promise<void> {
  const entries = (await fs.readdir(dir)) as string[];
  entries.sort();
  for (const entry of entries) {
    const full = path.join(dir, entry);
    const link = await fs.lstat(full);
    const stat = link.isSymbolicLink() ? await fs.stat(full).catch(() => undefined) : link;
    if (!stat) continue;
    if (stat.isFile()) out.push({ path: full, name: `${name}/${entry}`, size: stat.size, mtimeMs: stat.mtimeMs, hash: '' });
    else if (stat.isDirectory() && !link.isSymbolicLink()) await walk(fs, full, `${name}/${entry}`, out);
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
}

export async function hashLocalFile(file: LocalFile, fs: FileSystem, options: HashOptions = {}): Promise<void> {
  const hasher = await createHasher();
  const handle = await fs.open(file.path, 'r');
  try {
    const stat = await handle.stat();
    const keep = options.keep === true && stat.size <= KEEP_CONTENT_BYTES;
    const identity = { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs };
    const cached = keep ? undefined : options.cache?.get(identity);
    if (cached) {
      Object.assign(file, { size: stat.size, mtimeMs: stat.mtimeMs, hash: cached, content: undefined });
      return;
    }
    const kept: Buffer[] = [];
    const read = await readRange(handle, 0, stat.size, (block) => {
      options.signal?.throwIfAborted();
      hasher.update(block);
      if (keep) kept.push(Buffer.from(block));
    });
    if (read !== stat.size) throw new FtError('FILE_CHANGED', `${escapeForDisplay(file.path)} shrank while it was hashed`);
    file.size = stat.size;
    file.mtimeMs = stat.mtimeMs;
    file.hash = hasher.digest();
    file.content = keep ? Buffer.concat(kept) : undefined;
    if (stat.size > KEEP_CONTENT_BYTES) options.cache?.set(identity, file.hash);
  } finally {
    await handle.close();
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

/** XXH64 of the first `length` bytes, to check a receiver's partial before resuming it. */
export async function hashLocalPrefix(file: LocalFile, length: number, fs: FileSystem, signal?: AbortSignal): Promise<string> {
  if (file.content) return hashBytes(file.content.subarray(0, length));
  const hasher = await createHasher();
  const handle = await fs.open(file.path, 'r');
  try {
    await readRange(handle, 0, length, (block) => {
      signal?.throwIfAborted();
      hasher.update(block);
    });
  } finally {
    await handle.close();
  }
  return hasher.digest();
}
