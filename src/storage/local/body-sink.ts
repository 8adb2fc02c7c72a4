import { FtError } from '../../errors.js';
import { BodyWriter, WRITE_BATCH_BYTES } from './body-writer.js';
import type { FileHandle, OpenFile } from '../../file-system.js';
import type { Partial } from './partials.js';

/** Where a body's bytes go while they arrive. */
export interface BodySink {
  /** Takes a chunk; a returned promise means: wait before the next one. */
  write(chunk: Buffer): void | Promise<void>;
  /** Writes whatever the file still lacks and returns it open, ready for fsync. Idempotent. */
  finish(): Promise<OpenFile>;
  /** The body will not complete: keep on disk what can be resumed, and close. */
  abandon(): Promise<void>;
  /** The bytes proved wrong: close without keeping anything more. */
  discard(): Promise<void>;
}

/** Bodies up to this size are held in memory and written in one go once complete and verified. */
export const SMALL_BODY_BYTES = WRITE_BATCH_BYTES;

/** A small body's buffer starts at this size and doubles as bytes arrive, up to the body's length. */
const FIRST_BUFFER_BYTES = 64 * 1024;

/**
 * Opens the sink for a body of `length` bytes (undefined: a stream's) starting at `offset`. A small body touches the
 * disk only after its last byte, so receiving many small files costs no file operation in the
 * read loop; a large one streams to the partial file as it arrives.
 */
export async function openBodySink(partial: Partial, offset: number, length: number | undefined): Promise<BodySink> {
  // A stream (length unknown) goes to disk from its first byte: it may be of any size.
  if (length !== undefined && length <= SMALL_BODY_BYTES) return new MemorySink(partial, offset, length);
  const handle = await partial.openForWrite(offset);
  return new DiskSink(handle, new BodyWriter(handle, offset));
}

/**
 * A small body, copied into one buffer as it arrives: its memory is its length, however the
 * bytes were cut up (a chunk kept by reference can pin a whole socket read, or cost more in
 * bookkeeping than its byte). The buffer grows geometrically, so a peer that announces 1 MiB
 * and trickles bytes costs what it sent, not what it announced.
 */
export class MemorySink implements BodySink {
  private buffer: Buffer;
  private filled = 0;
  private written: OpenFile | undefined;

  constructor(
    private readonly partial: Partial,
    private readonly offset: number,
    private readonly length: number,
  ) {
    this.buffer = Buffer.allocUnsafe(Math.min(length, FIRST_BUFFER_BYTES));
  }

  /** Bytes of memory this body holds. */
  get retainedBytes(): number {
    return this.buffer.length;
  }

  write(chunk: Buffer): void {
    const end = this.filled + chunk.length;
    if (end > this.length) throw new FtError('INTERNAL', `a body of ${this.length} bytes got ${end}`);
    if (end > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.length, Math.max(end, 2 * this.buffer.length)));
      this.buffer.copy(grown, 0, 0, this.filled);
      this.buffer = grown;
    }
    chunk.copy(this.buffer, this.filled);
    this.filled = end;
  }

  /** Writes at once: the bytes leave memory as soon as the body is complete. */
  async finish(): Promise<OpenFile> {
    if (!this.written) {
      this.written = this.partial.writeRest(this.offset, [this.buffer.subarray(0, this.filled)]);
      this.buffer = EMPTY;
    }
    return this.written;
  }

  async discard(): Promise<void> {
    this.buffer = EMPTY;
  }

  /**
   * Nothing of a small body cut short is kept: resuming at most 1 MiB saves nothing worth an
   * inode, and a peer could otherwise fill the disk's inodes with headers cut short.
   */
  async abandon(): Promise<void> {
    this.buffer = EMPTY;
  }
}

const EMPTY = Buffer.alloc(0);

class DiskSink implements BodySink {
  constructor(
    private readonly handle: FileHandle,
    private readonly writer: BodyWriter,
  ) {}

  write(chunk: Buffer): void | Promise<void> {
    if (!this.writer.write(chunk)) return this.writer.drained();
  }

  async finish(): Promise<OpenFile> {
    await this.writer.flush();
    const { handle } = this;
    return {
      // FileHandle.sync() is fsync: the metadata set below is made durable too.
      sync: () => handle.sync(),
      close: () => handle.close(),
      setMetadata: async ({ mtime, mode }) => {
        if (mode !== undefined) await handle.chmod(mode);
        if (mtime !== undefined) await handle.utimes(new Date(), mtime);
      },
    };
  }

  async abandon(): Promise<void> {
    await this.writer.flush().catch(() => undefined);
    await this.handle.close().catch(() => undefined);
  }

  async discard(): Promise<void> {
    await this.abandon();
  }
}
