/**
 * Pulls a request body chunk by chunk, so the caller reads only as fast as it writes
 * (backpressure: an unread request stops the socket), and can stop without destroying the
 * socket (an answer can still go out). A body silent for `idleMs` is ended as if cut.
 */
import type { IncomingMessage } from 'node:http';

/** The body ended before its end: cut by the client, idle too long, or stopped here. */
export class BodyCut extends Error {}

export class BodyReader {
  private ended = false;
  private failed: Error | undefined;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly idleMs: number,
    /** Told the size of every chunk taken (the receiver's garbage-collection hints). */
    private readonly onRead?: (bytes: number) => void,
  ) {
    const wake = () => {
      const waiting = this.wake;
      this.wake = undefined;
      waiting?.();
    };
    req.on('readable', wake);
    req.on('end', () => {
      this.ended = true;
      wake();
    });
    req.on('error', (error) => {
      this.failed ??= new BodyCut(error.message);
      wake();
    });
    req.on('close', () => {
      if (!this.ended) this.failed ??= new BodyCut('the client went away');
      wake();
    });
  }

  /** The next bytes, or null at the end; throws when the body was cut (or idle, or stopped). */
  async next(): Promise<Buffer | null> {
    for (;;) {
      if (this.failed) throw this.failed;
      const chunk = this.req.read() as Buffer | null;
      if (chunk !== null) {
        this.onRead?.(chunk.length);
        return chunk;
      }
      if (this.ended || this.req.readableEnded) return null;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(() => this.stop('the body was idle too long'), this.idleMs);
        this.timer.unref();
      });
      clearTimeout(this.timer);
    }
  }

  /** Ends the body here: the connection goes (a DELETE, close(), or idleness). */
  stop(reason: string): void {
    this.failed ??= new BodyCut(reason);
    this.req.destroy();
    const waiting = this.wake;
    this.wake = undefined;
    waiting?.();
  }
}
