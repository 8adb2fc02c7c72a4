import { promises as nodeFsPromises } from 'node:fs';

/**
 * The slice of `node:fs/promises` that ft's storage and transfer code uses. Passing another
 * implementation (memfs in tests) runs the same code on another file system.
 */
export type FileSystem = Pick<
  typeof nodeFsPromises,
  'open' | 'stat' | 'lstat' | 'mkdir' | 'rename' | 'link' | 'unlink' | 'readdir' | 'readFile' | 'writeFile' | 'realpath' | 'truncate' | 'utimes'
> & {
  /** Optional: free-space checks are skipped where the file system cannot tell. */
  statfs?: typeof nodeFsPromises.statfs;
};

export type FileHandle = Awaited<ReturnType<FileSystem['open']>>;

export const nodeFileSystem: FileSystem = nodeFsPromises;

/** Large reads keep the number of asynchronous file operations (the real cost in Node) low. */
export const READ_BLOCK_BYTES = 1024 * 1024;

export function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/** Feeds the first `length` bytes of an open file to `consume`, in large blocks. */
export async function readRange(
  handle: FileHandle,
  start: number,
  length: number,
  consume: (block: Buffer) => void,
): Promise<number> {
  const block = Buffer.allocUnsafe(Math.min(READ_BLOCK_BYTES, Math.max(length, 1)));
  let done = 0;
  while (done < length) {
    const want = Math.min(block.length, length - done);
    const { bytesRead } = await handle.read(block, 0, want, start + done);
    if (bytesRead === 0) break;
    consume(block.subarray(0, bytesRead));
    done += bytesRead;
  }
  return done;
}
