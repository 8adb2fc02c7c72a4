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

/**
 * Feeds `length` bytes of an open file from `start` to `consume`, in large blocks, reading the
 * next block while the current one is consumed. `consume` must not keep the block it is given.
 */
export async function readRange(
  handle: FileHandle,
  start: number,
  length: number,
  consume: (block: Buffer) => void,
): Promise<number> {
  const size = Math.min(READ_BLOCK_BYTES, Math.max(length, 1));
  const buffers = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  const read = (into: Buffer, at: number) =>
    handle.read(into, 0, Math.min(size, length - at), start + at).then(({ bytesRead }) => into.subarray(0, bytesRead));
  let done = 0;
  let turn = 0;
  let next = length > 0 ? read(buffers[0]!, 0) : undefined;
  while (next) {
    const block = await next;
    if (block.length === 0) break;
    done += block.length;
    turn ^= 1;
    next = done < length ? read(buffers[turn]!, done) : undefined;
    try {
      consume(block);
    } catch (error) {
      await next?.catch(() => undefined);
      throw error;
    }
  }
  return done;
}
