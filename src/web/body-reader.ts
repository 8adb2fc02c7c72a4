/**
 * Pulls a request body chunk by chunk, so the caller reads only as fast as it writes
 * (backpressure: an unread request stops the socket), and can stop without destroying the
 * socket (an answer can still go out). A body silent for `idleMs` is ended as if cut, and so is
 * one arriving slower than `minRate` (as on the TCP protocol: a trickle would hold its slot and
 * its upload forever without ever being idle).
 */
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { BandwidthLimit } from '../bandwidth-limit.js';

/** The body ended before its end: cut by the client, idle too long, or stopped here. */
export class BodyCut extends Error {}

/** Windows over which the rate is judged: this much time spent waiting for the peer, at most (as on TCP). */
const RATE_WINDOW_MS = 10_000;

export class BodyReader {
  private ended = false;
  private failed: Error | undefined;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Time spent waiting for the peer (not for our own writes), and the bytes it sent. */
  private waitedMs = 0;
  private waitingSince: number | undefined;
  private bytes = 0;
  private window = { waitMs: 0, bytes: 0 };
  private readonly rateCheck: NodeJS.Timeout | undefined;
  /** Wakes a wait under the bandwidth limit when the body ends early. */
  private readonly gone = new AbortController();

  constructor(
    private readonly req: IncomingMessage,
    private readonly idleMs: number,
    /** Bytes per second; 0: no minimum. */
    private readonly minRate = 0,
    /** Told the size of every chunk taken (the receiver's garbage-collection hints). */
    private readonly onRead?: (bytes: number) => void,
    /** Each chunk waits for its bytes of this limit before it is handed on. */
    private readonly bandwidth?: BandwidthLimit,
  ) {
    const wake = () => {
      const waiting = this.wake;
      this.wake = undefined;
      waiting?.();
    };
    req.on('readable', wake);
    req.on('end', () => {
      this.ended = true;
      this.stopChecking();
      wake();
    });
    req.on('error', (error) => {
      this.failed ??= new BodyCut(error.message);
      wake();
    });
    req.on('close', () => {
      if (!this.ended) {
        this.failed ??= new BodyCut('the client went away');
        this.gone.abort();
      }
      this.stopChecking();
      wake();
    });
    if (minRate > 0) {
      this.rateCheck = setInterval(() => this.checkRate(), this.windowMs / 4);
      this.rateCheck.unref();
    }
  }

  /** Every byte of the body arrived (what follows is the caller's: verifying, placing). */
  get finished(): boolean {
    return this.ended || this.req.readableEnded;
  }

  /** The next bytes, or null at the end; throws when the body was cut (or idle, or stopped). */
  async next(): Promise<Buffer | null> {
    for (;;) {
      if (this.failed) throw this.failed;
      const chunk = this.req.read() as Buffer | null;
      if (chunk !== null) {
        this.onRead?.(chunk.length);
        this.bytes += chunk.length;
        if (this.bandwidth) {
          // Our own wait, outside waitedMs: neither the minimum rate nor the idle timer counts it.
          await this.bandwidth.takeInTurns(chunk.length, this.gone.signal).catch(() => undefined);
          if (this.failed) throw this.failed;
        }
        return chunk;
      }
      if (this.ended || this.req.readableEnded) return null;
      this.waitingSince = performance.now();
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(() => this.stop('the body was idle too long'), this.idleMs);
        this.timer.unref();
      });
      this.waitedMs += performance.now() - this.waitingSince;
      this.waitingSince = undefined;
      clearTimeout(this.timer);
    }
  }

  /** Ends the body here: the connection goes (a DELETE, close(), or idleness). */
  stop(reason: string): void {
    this.failed ??= new BodyCut(reason);
    this.gone.abort();
    this.stopChecking();
    this.req.destroy();
    const waiting = this.wake;
    this.wake = undefined;
    waiting?.();
  }

  /** Shorter idle timeouts judge over shorter windows: a trickle is caught before the idle timer could. */
  private get windowMs(): number {
    return Math.min(RATE_WINDOW_MS, this.idleMs / 2);
  }

  private checkRate(): void {
    const waitedMs = this.waitedMs + (this.waitingSince === undefined ? 0 : performance.now() - this.waitingSince);
    const waitMs = waitedMs - this.window.waitMs;
    if (waitMs < this.windowMs) return;
    const rate = ((this.bytes - this.window.bytes) * 1000) / waitMs;
    if (rate < this.minRate) return this.stop(`the body arrived at ${Math.round(rate)} B/s, below this receiver's minimum of ${this.minRate} B/s`);
    this.window = { waitMs: waitedMs, bytes: this.bytes };
  }

  private stopChecking(): void {
    clearInterval(this.rateCheck);
  }
}
