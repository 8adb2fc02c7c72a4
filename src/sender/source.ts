/**
 * What the sender needs of something it sends, to resume and re-send it: files (file-source.ts).
 * A stream such as stdin (its size unknown until it ends, read only once) is sent otherwise, by
 * stream-send.ts, which needs none of this.
 */
import type { FileIdentity } from './hash-cache.js';

/** Takes one block; a returned promise holds the next block back until it settles (backpressure). */
export type BlockConsumer = (block: Buffer) => void | Promise<void>;

export interface ReadOptions {
  /** Bytes to read from the offset. @default to the end */
  length?: number;
  signal?: AbortSignal;
  /** The consumer keeps the blocks it is given (a socket does until they are sent): each is a buffer of its own. */
  keepsBlocks?: boolean;
  /**
   * Once the last block is consumed, make sure the source is still what it was when it was
   * hashed (rejects FILE_CHANGED otherwise): a hash computed on the way then describes it.
   */
  checkUnchanged?: boolean;
}

export interface Source {
  /** Where it comes from, for messages and events (a path as the user gave it). */
  readonly path: string;
  /** Relative, `/`-separated name on the receiver. */
  readonly name: string;
  /** Bytes, as last seen; undefined while unknown (a stream still being written). */
  readonly size: number | undefined;
  /**
   * Whether it can be read again, from any offset (a file can; a pipe cannot). A resume's
   * prefix check and a re-send after a hash mismatch need that.
   */
  readonly rereadable: boolean;
  /**
   * XXH64 of the whole content once known; empty until then. The sender sets it when it learns
   * it otherwise: from a receipt for this unchanged content, or computed while the body was sent.
   */
  hash: string;
  /** What the hash cache and upload receipts key on; undefined when it has no lasting identity. */
  readonly identity: FileIdentity | undefined;
  /** The modification time to the nanosecond, once known (the receiver keeps it, with `metadata`). */
  readonly mtimeNs?: bigint;
  /** The permission bits, once known (sent only when the user asks to preserve modes). */
  readonly mode?: number;
  /** An empty folder: announced by a header of its own, with no body (FolderSource). */
  readonly folder?: boolean;
  /**
   * Streams the bytes from `offset` to `consume`, in blocks, at most two in memory, each awaited
   * before the next is handed on. Rejects FILE_CHANGED when it ends before `size`, LOCAL_FILE
   * when it cannot be read; an error of `consume` comes through as it is.
   */
  read(offset: number, consume: BlockConsumer, options?: ReadOptions): Promise<void>;
  /** Whether it changed since it was listed or hashed (replaced, written, truncated). */
  changed(): Promise<boolean>;
  /** Hashes the whole content as it is now (never from a cache), updating size, identity and hash. */
  hashNow(signal?: AbortSignal): Promise<void>;
  /** Frees what it holds in memory (bytes kept from hashing); it is read again when next needed. */
  release(): void;
}

/** An empty folder to send: nothing to read or hash; its header is all there is. */
export class FolderSource implements Source {
  readonly size = 0;
  readonly rereadable = true;
  readonly identity = undefined;
  readonly folder = true;
  hash = '';

  constructor(
    readonly path: string,
    readonly name: string,
  ) {}

  async read(): Promise<void> {}

  async changed(): Promise<boolean> {
    return false;
  }

  async hashNow(): Promise<void> {}

  release(): void {}
}
