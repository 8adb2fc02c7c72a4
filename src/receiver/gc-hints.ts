/**
 * Node gives every socket read a new 64 KiB buffer, and every message its parsed objects and
 * promises; V8 frees the dead ones when its heuristics get round to it, by which time tens of
 * megabytes have piled up (measured: a receiver's peak RSS 92 MiB for 1 GiB and 99 MiB for
 * 10,000 small files, against 69–72 and 78–80 MiB with frequent young collections). Given a way to
 * collect (ServeOptions.collectGarbage: `ft serve` passes a young-generation collection, which
 * takes well under a millisecond), the receiver asks for one every few megabytes read or every
 * few hundred messages.
 */
const COLLECT_EVERY_BYTES = 8 * 1024 * 1024;
const COLLECT_EVERY_MESSAGES = 256;

/** One receiver's counts since its last collection (all its connections together). */
export class GcHints {
  private bytesSince = 0;
  private messagesSince = 0;

  /** `collect` undefined: nothing is ever asked for. */
  constructor(private readonly collect: (() => void) | undefined) {}

  noteRead(bytes: number): void {
    this.bytesSince += bytes;
    if (this.bytesSince >= COLLECT_EVERY_BYTES) this.run();
  }

  noteMessage(): void {
    if (++this.messagesSince >= COLLECT_EVERY_MESSAGES) this.run();
  }

  private run(): void {
    this.bytesSince = 0;
    this.messagesSince = 0;
    this.collect?.();
  }
}
