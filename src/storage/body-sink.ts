import { BodyWriter, WRITE_BATCH_BYTES } from './body-writer.js';
import type { FileHandle, OpenFile } from './file-system.js';
import type { Partial } from './partials.js';

/** Where a body's bytes go while they arrive. */
export interface BodySink {
  /** Takes a chunk (kept by reference); a returned promise means: wait before the next one. */
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

/**
 * Opens the sink for a body of `length` bytes starting at `offset`. A small body touches the
 * disk only after its last byte, so receiving many small files costs no file operation in the
 * read loop; a large one streams to the partial file as it arrives.
 */
export async function openBodySink(partial: Partial, offset: number, length: number): Promise<BodySink> {
  if (length <= SMALL_BODY_BYTES) return new MemorySink(partial, offset);
  const handle = await partial.openForWrite(offset);
  return new DiskSink(handle, new BodyWriter(handle, offset));
}

class MemorySink implements BodySink {
  private readonly chunks: Buffer[] = [];
  private written: OpenFile | undefined;

  constructor(
    private readonly partial: Partial,
    private readonly offset: number,
  ) {}

  write(chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  /** Writes at once: the bytes leave memory as soon as the body is complete. */
  async finish(): Promise<OpenFile> {
    if (!this.written) {
      this.written = this.partial.writeRest(this.offset, this.chunks);
      this.chunks.length = 0;
    }
    return this.written;
  }

  async discard(): Promise<void> {
    this.chunks.length = 0;
  }

  /** What arrived is written out, so even a small body cut short resumes. */
  async abandon(): Promise<void> {
    if (this.chunks.length === 0 || this.written) return;
    const file = await this.finish().catch(() => undefined);
    await file?.close().catch(() => undefined);
  }
}

class DiskSink implements BodySink {
  constructor(
    private readonly handle: FileHandle,
    private readonly writer: BodyWriter,
  ) {}

  write(chunk: Buffer): void | Promise<void> {
    if (!this.writer.write(chunk)) return this.writer.drained();
  }

  async finish(): Promise<FileHandle> {
    await this.writer.flush();
    return this.handle;
  }

  async abandon(): Promise<void> {
    await this.writer.flush().catch(() => undefined);
    await this.handle.close().catch(() => undefined);
  }

  async discard(): Promise<void> {
    await this.abandon();
  }
}
