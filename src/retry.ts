/**
 * The one retry policy: exponential back-off with jitter. Attempt n waits a random time in
 * [d, 2d) where d = base·2ⁿ, capped at max, so senders that lost the same receiver at the same
 * moment do not come back in step. The jitter goes above the plain schedule, not below it
 * (as "full jitter", uniform in [0, d), would): the time a sender keeps trying, which is what
 * lets it ride out a receiver's restart, never shrinks below the sum of the plain delays.
 * Used for reconnecting, for a file refused BUSY, and for the hash cache's lock.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FtError } from './errors.js';

export interface Backoff {
  /** The shortest first delay, in ms. */
  baseMs: number;
  /** No delay is longer than this, in ms. */
  maxMs: number;
}

/** The delay before retry number `attempt` (0 for the first), in whole ms. */
export function backoffDelay(policy: Backoff, attempt: number, random: () => number = Math.random): number {
  const plain = policy.baseMs * 2 ** Math.min(attempt, 52);
  return Math.floor(Math.min(policy.maxMs, plain * (1 + random())));
}

/** Waits `ms`, or rejects with ABORTED as soon as the signal fires. */
export async function waitFor(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch((error: unknown) => {
    if (signal?.aborted) throw new FtError('ABORTED', 'send was cancelled');
    throw error;
  });
}
