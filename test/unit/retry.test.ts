import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { backoffDelay, waitFor } from '../../src/retry.js';

describe('backoffDelay', () => {
  const policy = { baseMs: 500, maxMs: 10_000 };

  it('doubles each attempt from the base, lengthened by up to as much again, never past the cap', () => {
    const plain = [0, 1, 2, 3, 4, 5, 6, 30, 2000].map((n) => backoffDelay(policy, n, () => 0));
    expect(plain).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000]);
    const longest = [0, 1, 2, 3, 4].map((n) => backoffDelay(policy, n, () => 0.999999));
    expect(longest).toEqual([999, 1999, 3999, 7999, 10_000]);
    expect(backoffDelay(policy, 1, () => 0.5)).toBe(1500);
  });

  it('spreads the delays of one attempt (jitter) between the plain delay and twice it', () => {
    const delays = Array.from({ length: 500 }, () => backoffDelay(policy, 2));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...delays)).toBeLessThan(4000);
    expect(new Set(delays).size).toBeGreaterThan(100);
  });

  it('never shortens the time spent retrying: five delays add up to at least 0.5 + 1 + 2 + 4 + 8 s', () => {
    for (let run = 0; run < 200; run++) {
      const total = [0, 1, 2, 3, 4].reduce((sum, n) => sum + backoffDelay(policy, n), 0);
      expect(total).toBeGreaterThanOrEqual(15_500);
    }
  });

  it('a zero base means no wait', () => {
    expect(backoffDelay({ baseMs: 0, maxMs: 10_000 }, 7)).toBe(0);
  });
});

describe('waitFor', () => {
  it('rejects with ABORTED as soon as the signal fires', async () => {
    const controller = new AbortController();
    const waiting = waitFor(60_000, controller.signal);
    setTimeout(() => controller.abort(), 10);
    await expect(waiting).rejects.toEqual(new FtError('ABORTED', 'send was cancelled'));
  });

  it('rejects at once on a signal already aborted, and resolves after the time otherwise', async () => {
    await expect(waitFor(60_000, AbortSignal.abort())).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(waitFor(1)).resolves.toBeUndefined();
  });
});
