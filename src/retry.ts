/**
 * The one retry policy: exponential back-off with full jitter ("Exponential Backoff And
 * Jitter", AWS Architecture Blog, 2015). Attempt n waits a random time in [0, min(max, base·2ⁿ)),
 * so senders that lost the same receiver at the same moment do not come back in step.
 * Used for reconnecting, for a file refused BUSY, and for the hash cache's lock.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FtError } from './errors.js';

export interface Backoff {
  /** The ceiling of the first delay, in ms. */
  baseMs: number;
  /** No delay is longer than this, in ms. */
  maxMs: number;
}

/** The delay before retry number `attempt` (0 for the first), in whole ms. */
export function backoffDelay(policy: Backoff, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * ceiling);
}

/** Waits `ms`, or rejects with ABORTED as soon as the signal fires. */
export async function waitFor(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch((error: unknown) => {
    if (signal?.aborted) throw new FtError('ABORTED', 'send was cancelled');
    throw error;
  });
}
