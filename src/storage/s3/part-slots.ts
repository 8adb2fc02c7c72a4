/**
 * How many parts the S3 store has going up at once, all uploads together: a part's buffer is
 * held from when it fills until its UploadPart is answered, so this count times the part size
 * bounds the memory of parts in flight, however many uploads there are. Waiters are served in
 * order, so no upload starves.
 *
 * Whole-part buffers that went up are kept for the next parts (at most `total` of them): a
 * fresh 8 MiB buffer per part was measured to cost the receiver more in garbage collection
 * than copying the bytes into it.
 */
export class PartSlots {
  private free: number;
  private readonly waiting: Array<() => void> = [];
  private readonly spare: Buffer[] = [];

  constructor(
    readonly total: number,
    private readonly partBytes: number,
  ) {
    this.free = total;
  }

  /** A buffer for `bytes` (unset contents): a kept one for a whole part. */
  buffer(bytes: number): Buffer {
    return (bytes === this.partBytes ? this.spare.pop() : undefined) ?? Buffer.allocUnsafeSlow(bytes);
  }

  /** A whole part's buffer nothing refers to any more, for reuse. */
  recycle(buffer: Buffer): void {
    if (buffer.length === this.partBytes && buffer.byteOffset === 0 && this.spare.length < this.total) this.spare.push(buffer);
  }

  /** A slot now (true) if one is free and nobody waits; false otherwise (then acquire()). */
  tryAcquire(): boolean {
    if (this.free === 0 || this.waiting.length > 0) return false;
    this.free -= 1;
    return true;
  }

  /** Resolves once a slot is this caller's; release() it when the part is answered. */
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}
