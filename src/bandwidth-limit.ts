/**
 * A bandwidth limit (`--limit-rate`): a token bucket of bytes, shared by everything one limit
 * covers (every file and connection of a send() call; every session and tus upload of a
 * receiver). Not src/discovery/rate-limit.ts, which counts answers per address.
 *
 * Debt model: take(n) books n bytes at once, even more than the bucket holds, and resolves when
 * the bucket is back to zero or more. The bookings form one ledger, so waiters are served in
 * the order they asked (FIFO: several connections share the limit fairly), with no queue to
 * keep: the ledger is a single time, `fullAt`, when the bucket would be full again (GCRA).
 * Every byte granted by time t was booked by then, so bytes granted ≤ rate·t + burst.
 *
 * Time comes from a monotonic clock and waits from `sleep`, both injectable, so tests run
 * without real time; a waiter holds one timer, cleared when it is woken or aborted.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import { FtError } from './errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The burst is this much time at the rate: smooth at a glance, few wake-ups. */
const BURST_SECONDS = 0.1;
/** At least one TLS record or socket read, so a read never waits for a bucket too small for it. */
export const MIN_BURST = 16 * KiB;
/** At most this much ahead of the rate, however high it is. */
export const MAX_BURST = MiB;
/** takeInTurns' slice: what one taker gets before the others waiting have their turn. */
const TURN_BYTES = 16 * KiB;

export interface BandwidthLimitOptions {
  /** Bytes per second, more than 0. */
  bytesPerSecond: number;
  /** Milliseconds from a monotonic clock. @default performance.now */
  now?: () => number;
  /** Waits `ms`, rejecting when `signal` aborts. @default node:timers/promises setTimeout */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** The burst for a rate: 0.1 s of it, clamped to 16 KiB–1 MiB. */
export function burstFor(bytesPerSecond: number): number {
  return Math.min(MAX_BURST, Math.max(MIN_BURST, Math.floor(bytesPerSecond * BURST_SECONDS)));
}

export class BandwidthLimit {
  readonly bytesPerSecond: number;
  /** Bytes that may go at once after a pause. */
  readonly burst: number;
  private readonly perMs: number;
  private readonly burstMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** When the bucket is full again if nothing more is booked (in the past: it is full). */
  private fullAt: number;

  constructor(options: BandwidthLimitOptions) {
    const { bytesPerSecond } = options;
    if (!(Number.isFinite(bytesPerSecond) && bytesPerSecond > 0)) {
      throw new FtError('USAGE', `a bandwidth limit must be a positive number of bytes per second, not ${String(bytesPerSecond)}`);
    }
    this.bytesPerSecond = bytesPerSecond;
    this.burst = burstFor(bytesPerSecond);
    this.perMs = bytesPerSecond / 1000;
    this.burstMs = this.burst / this.perMs;
    this.now = options.now ?? (() => performance.now());
    this.sleep = options.sleep ?? ((ms, signal) => sleepFor(ms, undefined, { signal }));
    this.fullAt = this.now();
  }

  /**
   * Books `bytes` and resolves once they may go. Aborting `signal` rejects at once with
   * ABORTED (the booking is given back if no one booked after it).
   */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!(Number.isFinite(bytes) && bytes >= 0)) throw new FtError('INTERNAL', `cannot take ${String(bytes)} bytes of a bandwidth limit`);
    if (bytes === 0) return;
    if (signal?.aborted) throw aborted();
    const now = this.now();
    const before = Math.max(this.fullAt, now);
    const booked = before + bytes / this.perMs;
    this.fullAt = booked;
    // The bucket is back at zero when there is a burst's time left until full.
    const goAt = booked - this.burstMs;
    try {
      for (let left = goAt - now; left > 0; left = goAt - this.now()) await this.sleep(left, signal);
    } catch (error) {
      // Given back only by the last booking: those after it planned their waits with it counted.
      if (this.fullAt === booked) this.fullAt = before;
      if (signal?.aborted) throw aborted();
      throw error;
    }
  }

  /**
   * Takes `bytes` 16 KiB at a time, each booked after the last one's wait: takers that came
   * meanwhile go in between, so those sharing the limit share bytes, not turns (one reading
   * 64 KiB chunks and one reading 16 KiB ones get the same).
   */
  async takeInTurns(bytes: number, signal?: AbortSignal): Promise<void> {
    for (let left = bytes; left > 0; left -= TURN_BYTES) await this.take(Math.min(TURN_BYTES, left), signal);
  }
}

function aborted(): FtError {
  return new FtError('ABORTED', 'cancelled while waiting under the bandwidth limit');
}
