import { constants } from 'node:fs';
import { identityOf, sameIdentity, type FileHandle, type FileIdentity, type FileSystem } from '../../file-system.js';

export { identityOf, sameIdentity, type FileIdentity } from '../../file-system.js';

// O_NONBLOCK: a FIFO put at the name between the lstat and the open must not hang the open.
const OPEN_EXISTING = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/** Blocks compared at a time; comparisons running at once are capped, so memory is bounded. */
const BLOCK_BYTES = 256 * 1024;
const MAX_COMPARISONS = 4;

/**
 * Caps the comparisons running at once (memory: two blocks each). One per store: stores in
 * one process do not wait for each other, and nothing is shared at module level.
 */
export class ComparisonTurns {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max = MAX_COMPARISONS) {}

  take(): Promise<void> {
    if (this.running < this.max) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiting.push(() => {
        this.running++;
        resolve();
      }),
    );
  }

  give(): void {
    this.running--;
    this.waiting.shift()?.();
  }
}

/**
 * Compares the bytes of the regular file at `existing` with `ours`, block by block (never a
 * hash: this decides whether an upload may be dropped). Returns the existing file's identity
 * when every byte is equal and the file did not change while it was read (fstat before and
 * after: same dev, ino, size, mtime and ctime), else undefined.
 */
export async function sameBytes(fs: FileSystem, turns: ComparisonTurns, existing: string, ours: string, size: number): Promise<FileIdentity | undefined> {
  await turns.take();
  let theirs: FileHandle | undefined;
  let mine: FileHandle | undefined;
  try {
    theirs = await fs.open(existing, OPEN_EXISTING).catch(() => undefined);
    if (!theirs) return undefined;
    const before = await theirs.stat();
    if (!before.isFile() || before.size !== size) return undefined;
    mine = await fs.open(ours, OPEN_EXISTING);
    const a = Buffer.allocUnsafe(Math.min(BLOCK_BYTES, Math.max(size, 1)));
    const b = Buffer.allocUnsafe(a.length);
    for (let at = 0; at < size; ) {
      const length = Math.min(a.length, size - at);
      const [x, y] = await Promise.all([readFully(theirs, a, length, at), readFully(mine, b, length, at)]);
      if (x !== length || y !== length || !a.subarray(0, length).equals(b.subarray(0, length))) return undefined;
      at += length;
    }
    const after = identityOf(await theirs.stat());
    return sameIdentity(identityOf(before), after) ? after : undefined;
  } finally {
    await Promise.all([theirs?.close(), mine?.close()].map((closing) => closing?.catch(() => undefined)));
    turns.give();
  }
}

async function readFully(handle: FileHandle, into: Buffer, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(into, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}
